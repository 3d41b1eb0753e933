"""Stripe: the production gateway, through Stripe Connect (one connected account per clinic).

Every call made for a clinic carries ``stripe_account=<the clinic's connected account>``: the
Checkout Session, the PaymentIntent, refunds and disputes all live on the clinic's account (direct
charges).

No PHI goes to Stripe: the Checkout line item says "Payment to <clinic>", and metadata carries
our opaque ids only (transaction, organization, refund, idempotency key). Never a patient's
name, birth date, e-mail, phone, billing item or visit reason, and never the staff's free-text
refund reason.

Our "charge id" for a Stripe payment is its PaymentIntent id (``pi_…``): the Checkout Session,
the PaymentIntent's own events, refunds and disputes all name it, so every path reports the same
fact under the same ledger key (``charge:pi_…:succeeded``).

One job a module: ``client`` (the configured client and Stripe's errors turned into ours),
``facts`` (Stripe's objects read into facts), ``gateway`` (the interface every gateway
implements: checkout and refunds), ``connect`` (the clinic's account), ``saved_cards`` (cards on
file), ``payouts`` (the clinic's payouts, what each carries, and its balance) and ``events``
(webhook events, and listing the ones that never arrived).
"""

from .client import stripe_client, stripe_configured
from .facts import account_fact_from_account, charge_fact_from_payment_intent
from .gateway import StripeGateway
from .saved_cards import SavedCardFact

__all__ = [
    "SavedCardFact",
    "StripeGateway",
    "account_fact_from_account",
    "charge_fact_from_payment_intent",
    "stripe_client",
    "stripe_configured",
]
