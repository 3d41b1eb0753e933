"""Build transactions the way patients make them: through the real Sandbox processor.

``paid_transaction`` opens a Sandbox checkout, submits a test card on it and lets the Sandbox
deliver its event through the webhook path (``gateway_event_receive``, on commit), then records the
outcome the way the confirmation page does (``checkout_outcome`` → ``charge_fact_record``): both
paths converge on one ledger event, as in production. The receipt e-mail goes out on the way.
"""

from __future__ import annotations

from django.test import TestCase

from ehr_sync.models import Patient
from org_profile.models import Location
from transactions.enums import PaymentRequestKind
from transactions.gateways.sandbox import SandboxGateway
from transactions.sandbox import processor as sandbox_processor
from transactions.models import Transaction
from transactions.services.ledger_facts import charge_fact_record
from transactions.services.transaction_open import transaction_open

from ..factories import LocationFactory, PatientFactory

SUCCEEDS = "4242424242424242"
DECLINED = "4000000000000002"
REFUND_FAILS = "4000000000005126"


def checkout_transaction(
    *,
    organization,
    patient: Patient | None = None,
    location: Location | None = None,
    amount_cents: int = 5000,
    payment_request=None,
    billing_item: str = "Office visit copay",
) -> Transaction:
    """A pending transaction with an open Sandbox checkout."""
    patient = patient or PatientFactory(organization=organization)
    location = location or LocationFactory(organization=organization)
    transaction = transaction_open(
        organization=organization,
        payment_request=payment_request,
        patient=patient,
        location=location,
        kind=PaymentRequestKind.COPAY,
        billing_item=billing_item,
        amount_cents=amount_cents,
        vendor=organization.payment_gateway,
    )
    start = SandboxGateway().checkout_start(
        transaction=transaction, success_url="http://testserver/done", cancel_url="http://testserver/cancel"
    )
    transaction.gateway_checkout_id = start.checkout_id
    transaction.save(update_fields=["gateway_checkout_id"])
    return transaction


def card_pay(transaction: Transaction, *, card_number: str = SUCCEEDS) -> Transaction:
    """Submit a test card on the transaction's checkout and record what the Sandbox says."""
    gateway = SandboxGateway()
    with TestCase.captureOnCommitCallbacks(execute=True):
        sandbox_processor.card_submit(
            session_id=transaction.gateway_checkout_id,
            card_number=card_number,
            expiry_month="12",
            expiry_year="2030",
            cvc="123",
        )
    charge_fact_record(transaction=transaction, fact=gateway.checkout_outcome(transaction=transaction))
    transaction.refresh_from_db()
    return transaction


def paid_transaction(*, organization, card_number: str = SUCCEEDS, **kwargs) -> Transaction:
    """A transaction the patient paid with ``card_number`` (4242… unless told)."""
    return card_pay(checkout_transaction(organization=organization, **kwargs), card_number=card_number)


def money_state(transaction: Transaction) -> dict:
    """Everything a refund could change, to assert that a refused one changed nothing."""
    from lumapay.models import AuditEvent
    from transactions.models import Refund, SandboxCharge, SandboxRefund, TransactionEvent

    row = Transaction.objects.get(pk=transaction.pk)
    return {
        "status": row.status,
        "charged_cents": row.charged_cents,
        "refunded_cents": row.refunded_cents,
        "last_error": row.last_error,
        "refunds": list(Refund.objects.filter(transaction=row).values_list("pk", "status", "amount_cents")),
        "events": list(TransactionEvent.objects.filter(transaction=row).values_list("pk", "kind", "amount_cents")),
        "audit_events": list(AuditEvent.objects.filter(transaction=row).values_list("pk", "action")),
        "sandbox_refunds": SandboxRefund.objects.filter(charge_id=row.gateway_charge_id).count(),
        "sandbox_refunded_cents": SandboxCharge.objects.filter(id=row.gateway_charge_id)
        .values_list("amount_refunded_cents", flat=True)
        .first(),
    }
