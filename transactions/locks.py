"""Every row lock in the payments app, in one place. Call these only inside ``transaction.atomic()``.

Each lock takes the rows that change and nothing else: ``select_for_update(of=("self",))``. A
``FOR UPDATE`` over a join without ``of=`` would also lock the joined organization, patient and
location rows, and every insert that names them (an audit event, a ledger event, a new checkout)
would then wait on its foreign-key check (``FOR KEY SHARE``) behind that lock: two such waits in
opposite order are a deadlock. Joined rows are read, not locked.

The order. A database transaction that takes more than one lock takes them in this order, and
never goes back to an earlier kind once it holds a later one:

0. a payment plan, then its instalments by number (``payment_plan_lock``, ``plan_instalment_lock``):
   charging an instalment records its outcome, owes the patient a message and may open a request
   for it, all after these;
1. the payment request (``payment_request_lock``);
2. the transaction (``transaction_lock``); a transaction's sibling checkouts of the same request
   are only written while the request's lock is held;
3. the refund (``refund_lock``) or the dispute row;
4. an outbox row, a message owed to the patient (``delivery_lock``) or a posting owed to the EHR
   (``ehr_posting_lock``), created or claimed last: it is written in the same database
   transaction as its cause, after the cause's locks;
5. the Sandbox processor's own rows (checkout session, then charge), which stand outside
   LumaPay's ledger as Stripe does, and the gateway-event row, each locked on its own.

Never hold any of these across I/O: a PDF rendered with WeasyPrint, an e-mail or SMS sent, an
HTTP call to a gateway. Claim under the lock in a short transaction, do the I/O with no
transaction open, then record the outcome in another short one (see ``services/patient_messages``
and ``services/refunds._refund_submit``). The one exception is starting a hosted checkout
(``services/payments.checkout_begin``, and ``saved_cards.saved_card_setup_begin`` for a card on
file): the payment request's lock is what makes a second tab resume the first tab's checkout
instead of opening a second one, so it is held while the gateway opens (or reports on) the
checkout. Only work on that same request waits for it, and it takes locks in the order above, so
that wait cannot become a deadlock.
"""

from .models import EhrPosting, PaymentPlan, PaymentPlanInstalment, PaymentRequest, PaymentRequestDelivery, Refund, Transaction


def payment_request_lock(*, payment_request_id: int) -> PaymentRequest:
    """The request, locked alone; its organization, patient and location are read with it."""
    return (
        PaymentRequest.objects.select_for_update(of=("self",))
        .select_related("organization", "patient", "location")
        .get(pk=payment_request_id)
    )


def transaction_lock(*, transaction_id: int) -> Transaction:
    """The transaction, locked alone; its organization is read with it."""
    return Transaction.objects.select_for_update(of=("self",)).select_related("organization").get(pk=transaction_id)


def refund_lock(*, refund_id: int) -> Refund:
    return Refund.objects.select_for_update(of=("self",)).get(pk=refund_id)


def delivery_lock(*, delivery_id: int, skip_locked: bool = False) -> PaymentRequestDelivery | None:
    """A message owed to the patient (an outbox row), locked alone (None: no such row, or, with
    ``skip_locked``, another sender is claiming it right now)."""
    return (
        PaymentRequestDelivery.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .filter(pk=delivery_id)
        .first()
    )


def ehr_posting_lock(*, posting_id: int, skip_locked: bool = False) -> EhrPosting | None:
    """A posting owed to the EHR, locked alone (None: no such row, or, with ``skip_locked``,
    another worker is claiming it right now)."""
    return (
        EhrPosting.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .select_related("organization")
        .filter(pk=posting_id)
        .first()
    )


def payment_plan_lock(*, plan_id: int) -> PaymentPlan:
    return PaymentPlan.objects.select_for_update(of=("self",)).select_related("organization").get(pk=plan_id)


def plan_instalment_lock(*, instalment_id: int, skip_locked: bool = False) -> PaymentPlanInstalment | None:
    """An instalment, locked alone (None: no such row, or, with ``skip_locked``, another charger
    holds it right now)."""
    return (
        PaymentPlanInstalment.objects.select_for_update(of=("self",), skip_locked=skip_locked)
        .filter(pk=instalment_id)
        .first()
    )


def plan_instalments_lock(*, plan_id: int) -> list[PaymentPlanInstalment]:
    """All of a plan's instalments, in number order (after the plan's own lock)."""
    return list(PaymentPlanInstalment.objects.select_for_update(of=("self",)).filter(plan_id=plan_id).order_by("number"))
