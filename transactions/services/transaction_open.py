"""Opening a transaction: the one place a ``Transaction`` row is made.

A patient paying a request through the gateway's checkout, staff charging or holding a card on
file, and the demo seed all open transactions here, so who, where, what and how much are copied
from a payment request the same way everywhere and a transaction never mixes organizations.
What happens next (the "charge requested" event, the gateway call) is the caller's.
"""

from __future__ import annotations

from lumapay.errors import ApplicationError

from ..models import Transaction


def transaction_build(
    *,
    organization,
    vendor: str,
    payment_request=None,
    patient=None,
    location=None,
    kind: str | None = None,
    billing_item: str | None = None,
    amount_cents: int | None = None,
    saved_card=None,
    appointment=None,
    automation_rule: str = "",
) -> Transaction:
    """The transaction, not yet saved (the seed saves many at once). With ``payment_request`` the
    patient, location, kind, billing item, amount and currency are the request's, unless given;
    without one they must be given and the currency is the organization's."""
    if payment_request is not None:
        if payment_request.organization_id != organization.pk:
            raise ApplicationError("This payment request does not exist.")
        patient = patient or payment_request.patient
        location = location or payment_request.location
        kind = kind or payment_request.kind
        billing_item = billing_item if billing_item is not None else payment_request.billing_item
        amount_cents = amount_cents if amount_cents is not None else payment_request.amount_cents
        currency = payment_request.currency
    else:
        currency = organization.currency
    if patient.organization_id != organization.pk or location.organization_id != organization.pk:
        raise ApplicationError("This patient or location belongs to another organization.")
    return Transaction(
        organization=organization,
        payment_request=payment_request,
        patient=patient,
        location=location,
        kind=kind,
        billing_item=(billing_item or "")[:120],
        amount_cents=amount_cents,
        currency=currency,
        vendor=vendor,
        saved_card=saved_card,
        appointment=appointment,
        automation_rule=automation_rule,
    )


def transaction_open(**fields) -> Transaction:
    """Open (insert) a pending transaction; arguments as ``transaction_build``. The caller holds
    the payment request's lock when there is one, and writes the "charge requested" event in the
    same database transaction."""
    transaction = transaction_build(**fields)
    transaction.save()
    return transaction
