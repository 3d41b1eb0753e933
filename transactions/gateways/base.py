"""The one interface every payment gateway implements. Callers never know which one they have.

A gateway starts a hosted checkout, reads a checkout's outcome, refunds, verifies the events it
sends us, and turns those events into facts (``GatewayFact``). Nothing here writes to our ledger,
and no gateway imports a service: the services in ``transactions.services`` apply the facts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from lumapay.errors import ApplicationError


class GatewayError(ApplicationError):
    """The gateway could not do what we asked (declined, refused, unreachable)."""


class GatewayUnavailable(GatewayError):
    """A transient failure (timeout, connection error, 5xx): safe to retry with the same key."""


class WebhookVerificationError(ApplicationError):
    """The event's signature, timestamp or body does not check out. Answer 400; store nothing."""


@dataclass(frozen=True)
class CheckoutStart:
    checkout_id: str
    redirect_url: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ChargeFact:
    """What the gateway says happened to a checkout's payment."""

    # "succeeded" | "failed" | "pending"; for a card held before a visit (manual capture),
    # "authorized" (the amount is held) and "released" (let go without charging).
    status: str
    charge_id: str = ""
    amount_cents: int = 0
    card_brand: str = ""
    card_last4: str = ""
    authorization_code: str = ""
    fee_cents: int = 0
    # The platform's application fee on the charge, as the gateway reports it (org_profile.fees).
    platform_fee_cents: int = 0
    failure_code: str = ""
    failure_message: str = ""


@dataclass(frozen=True)
class SavedCardFact:
    """A card the gateway keeps for a patient (Stripe: a PaymentMethod attached to the patient's
    Customer; the Sandbox: its own)."""

    payment_method_id: str
    card_brand: str = ""
    card_last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class RefundFact:
    status: str  # "succeeded" | "failed" | "pending"
    gateway_refund_id: str
    amount_cents: int
    idempotency_key: str = ""  # ours, when LumaPay made the refund; empty for one made elsewhere
    failure_message: str = ""
    reason: str = ""  # the gateway's reason for a refund, in words ("Requested by the customer")


@dataclass(frozen=True)
class DisputeFunds:
    """One movement of money a dispute caused in the clinic's balance (Stripe: one of the dispute's
    ``balance_transactions``). ``amount_cents`` is negative when the amount was withdrawn, positive
    when it was reinstated; ``fee_cents`` is the dispute fee taken (negative: given back)."""

    gateway_reference: str
    amount_cents: int
    fee_cents: int = 0


@dataclass(frozen=True)
class DisputeFact:
    """What the gateway says about a dispute (chargeback or inquiry) on a charge.

    The dispute's amount is what the cardholder contests; only ``funds`` move money. An inquiry
    has none; a chargeback has its withdrawal (with the dispute fee) and, when won, its
    reinstatement. Each report carries every movement so far."""

    gateway_dispute_id: str
    amount_cents: int
    status: str  # the gateway's status: "needs_response", "under_review", "won", "lost", "warning_…"
    reason: str = ""
    evidence_due_by: datetime | None = None
    as_of: int = 0  # the event's creation time (Unix seconds): older news never overwrites newer
    funds: tuple[DisputeFunds, ...] = ()


@dataclass(frozen=True)
class AccountFact:
    """What the gateway says about a clinic's own account with it (Stripe Connect)."""

    account_id: str
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: list[str] = field(default_factory=list)
    disabled_reason: str = ""
    as_of: int = 0  # the event's creation time (Unix seconds): older news never overwrites newer
    # What the gateway still needs, by urgency (Stripe's requirements hash), and by when what is
    # currently due must be given (Unix seconds; None: no deadline).
    currently_due: tuple[str, ...] = ()
    past_due: tuple[str, ...] = ()
    eventually_due: tuple[str, ...] = ()
    current_deadline: int | None = None
    # The clinic disconnected the platform from its account (Stripe: account.application.deauthorized).
    disconnected: bool = False


@dataclass(frozen=True)
class LedgerFact:
    """One fact from a gateway event about one of our transactions, with the gateway's ids for it
    (``transactions.selectors.gateway_events.gateway_transaction`` finds the transaction)."""

    checkout_id: str = ""
    charge_id: str = ""
    charge: ChargeFact | None = None
    refund: RefundFact | None = None
    dispute: DisputeFact | None = None


@dataclass(frozen=True)
class PayoutFact:
    """What the gateway says about one payout: money sent from a clinic's balance at the gateway to
    its bank account (Stripe: a Payout on the connected account; the Sandbox: its daily payouts).

    ``status`` is "pending", "in_transit", "paid", "failed" or "canceled"; ``method`` "standard" or
    "instant". ``amount_cents`` is what reaches the bank (positive), in ``currency``. The bank
    account is named by its bank and last four digits only."""

    organization_id: int
    gateway_payout_id: str
    amount_cents: int
    currency: str
    status: str
    method: str
    created: datetime
    arrival_date: date
    automatic: bool = True
    bank_name: str = ""
    bank_last4: str = ""
    trace_id: str = ""
    failure_code: str = ""
    failure_message: str = ""
    description: str = ""
    as_of: int = 0  # the event's creation time (Unix seconds): older news never overwrites newer


@dataclass(frozen=True)
class BalanceAmount:
    currency: str
    available_cents: int
    pending_cents: int


@dataclass(frozen=True)
class BalanceFact:
    """A clinic's balance at the gateway, per currency: available (can be paid out now) and
    pending (charges not settled yet). Stripe: the Balance object of ``balance.available``."""

    organization_id: int
    amounts: tuple[BalanceAmount, ...]
    as_of: int = 0


@dataclass(frozen=True)
class PayoutLineFact:
    """One movement of money a payout carries (Stripe: one BalanceTransaction listed with
    ``payout=``): a charge, a refund, a fee, a dispute's withdrawal or reinstatement, an adjustment.

    ``kind`` is one of ``payouts.enums.PayoutLineKind``; ``amount_cents`` is the gross movement
    (negative for money out of the balance), ``fee_cents`` what the gateway took on it, and
    ``net_cents`` = amount - fee is what it adds to the payout. ``source_id`` is the gateway's id
    of what caused it (a charge, refund or dispute id), ``charge_id`` the charge it concerns when
    known (a refund's or a dispute's charge), so the line can be linked to our transaction."""

    gateway_line_id: str
    kind: str
    amount_cents: int
    fee_cents: int
    net_cents: int
    currency: str
    created: datetime
    available_on: date | None = None
    source_id: str = ""
    charge_id: str = ""
    description: str = ""


@dataclass(frozen=True)
class NextPayout:
    """When the gateway will next pay the clinic out on its schedule (the day the payout is sent:
    the bank has it a day or two later), and about how much."""

    currency: str
    payout_date: date
    estimated_cents: int


# What a gateway event can tell us, one kind of fact a class: about a transaction's money
# (``LedgerFact``), about a clinic's account (``AccountFact``), its payouts (``PayoutFact``) and
# its balance (``BalanceFact``). Each kind has one entry in
# ``transactions.services.gateway_events.FACT_KINDS``, which applies it; payouts' kinds are
# registered there by the payouts app (it sits above transactions).
GatewayFact = LedgerFact | AccountFact | PayoutFact | BalanceFact


@dataclass(frozen=True)
class VerifiedEvent:
    event_id: str
    event_type: str
    payload: dict
    facts: list[GatewayFact] = field(default_factory=list)


class PaymentGateway(Protocol):
    name: str

    def checkout_start(
        self, *, transaction, success_url: str, cancel_url: str, locale: str = "auto"
    ) -> CheckoutStart:
        """Open a hosted checkout for ``transaction.amount_cents``; metadata carries opaque ids only.
        ``locale`` is the language its pages speak ("en", "es"; "auto": the browser's), as Stripe's."""

    def checkout_outcome(self, *, transaction) -> ChargeFact:
        """Ask the gateway what became of the transaction's checkout."""

    def checkout_expire(self, *, transaction) -> ChargeFact:
        """Close the transaction's checkout so it can no longer be paid, before another replaces it.

        Returns the checkout's outcome at that moment: "succeeded" when the patient paid it just
        before it closed (the caller records that instead of starting a new one).
        """

    def refund(self, *, refund) -> RefundFact:
        """Refund ``refund.amount_cents`` of the transaction's charge, idempotent on ``refund.idempotency_key``."""

    def charge_refunds(self, *, transaction) -> list[RefundFact]:
        """Every refund of the transaction's charge at the gateway, whoever made it (LumaPay, or the
        clinic in the gateway's own dashboard), as the gateway has it now."""

    def event_verify(self, *, body: bytes, headers) -> VerifiedEvent:
        """Check a delivered event's signature and freshness; parse it into facts."""

    def organization_id_for_event(self, payload: dict) -> int | None:
        """The clinic an event comes from, when the gateway names it (None: its facts decide)."""

    def facts_from_payload(self, *, payload: dict) -> list[GatewayFact]:
        """The facts in an event already verified and stored (processing and replays)."""


class CardsOnFile(Protocol):
    """Cards on file, for a gateway that keeps them (``transactions.gateways.cards_on_file_for``):
    saved on the gateway's own page with the patient's consent, charged or held while the patient
    is away, the hold captured or released, and the card forgotten. Every method answers with
    facts and writes nothing to our ledger; the saved-card service records them."""

    name: str

    def customer_create(self, *, organization, patient_id: int) -> str:
        """A customer at the gateway to keep one patient's cards under; it carries nothing about them."""

    def card_setup_start(
        self, *, organization, customer_id: str, saved_card_id: int, success_url: str, cancel_url: str, locale: str = "auto"
    ) -> CheckoutStart:
        """The gateway's page where the patient enters the card (nothing is charged), in ``locale``
        ("en", "es"; "auto": the browser's)."""

    def card_setup_outcome(self, *, organization, setup_id: str) -> SavedCardFact | None:
        """The card the patient saved through that page; None while it is not saved (yet)."""

    def saved_card_charge(
        self, *, transaction, saved_card, capture: bool, idempotency_key: str = ""
    ) -> tuple[str, ChargeFact]:
        """Charge (``capture``) or only hold ``transaction.amount_cents`` on the card. Returns the
        gateway's id for the payment (kept as the transaction's checkout id) and its outcome; a
        decline is a failed fact, not an error. Idempotent on the transaction (or on
        ``idempotency_key`` when given)."""

    def authorization_capture(self, *, transaction) -> ChargeFact:
        """Charge the held amount; a payment captured already answers its success. Raises
        ``GatewayError`` when nothing is held any more (released, lapsed)."""

    def authorization_release(self, *, transaction) -> ChargeFact:
        """Let the held amount go ("released"); a hold released already answers the same."""

    def authorization_outcome(self, *, transaction) -> ChargeFact:
        """What became of the transaction's card-on-file payment, as the gateway has it now."""

    def saved_card_detach(self, *, saved_card) -> None:
        """The gateway forgets the card (it can never be charged again)."""


class Payouts(Protocol):
    """A clinic's balance and payouts at the gateway (``transactions.gateways.payouts_for``): read,
    never moved by LumaPay. Every method answers with facts and writes nothing of ours."""

    name: str
    # Whether ``payout_lines`` answers for a payout that is not ``automatic`` (one asked for by
    # hand). Stripe itemizes automatic payouts only; the Sandbox itemizes every payout.
    itemizes_manual_payouts: bool

    def payout_lines(self, *, organization, gateway_payout_id: str) -> Iterator[PayoutLineFact]:
        """Every balance transaction the payout carries, all pages followed, the payout's own
        withdrawal excluded (so the lines' ``net_cents`` add up to the payout's amount)."""

    def payouts_list(self, *, organization, created_after: datetime) -> Iterator[PayoutFact]:
        """The organization's payouts created after ``created_after`` as the gateway has them now
        (for the beat that catches what an event missed), all pages followed."""

    def payout_get(self, *, organization, gateway_payout_id: str) -> PayoutFact:
        """One payout as the gateway has it now."""

    def balance(self, *, organization) -> BalanceFact:
        """The organization's balance now."""

    def next_payouts(self, *, organization) -> list[NextPayout]:
        """The next scheduled payout per currency (none when payouts are paused or nothing is due)."""
