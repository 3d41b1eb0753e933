import pytest

from lumapay.errors import ApplicationError
from lumapay.models import ActorType, AuditEvent
from transactions.enums import RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.base import GatewayUnavailable
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import Refund, SandboxCharge, SandboxRefund, TransactionEvent
from transactions.selectors.ledger import transaction_refundable_cents, transaction_timeline
from transactions.services.refunds import RefundFailed, refund_create, refund_retry

from .payments import DECLINED, REFUND_FAILS, card_pay, checkout_transaction, money_state, paid_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)


def _events(transaction):
    return list(
        TransactionEvent.objects.filter(transaction=transaction)
        .order_by("id")
        .values_list("kind", "amount_cents", "actor_type", "message")
    )


def test_refund_in_full(organization, manager, payment):
    refund = refund_create(
        organization=organization, actor=manager, transaction=payment, amount_cents=5000, reason="Copay charged twice"
    )

    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.amount_cents == 5000
    assert refund.reason == "Copay charged twice"
    assert refund.requested_by == manager
    assert refund.gateway_refund_id.startswith("re_sbx_")
    assert (payment.status, payment.charged_cents, payment.refunded_cents) == (TransactionStatus.REFUNDED, 5000, 5000)
    assert transaction_refundable_cents(transaction=payment) == 0
    assert _events(payment) == [
        (Kind.CHARGE_SUCCEEDED, 5000, ActorType.GATEWAY, ""),
        (Kind.REFUND_REQUESTED, 5000, ActorType.STAFF, "Copay charged twice"),
        (Kind.REFUND_SUCCEEDED, 5000, ActorType.GATEWAY, ""),
    ]
    requested = TransactionEvent.objects.get(transaction=payment, kind=Kind.REFUND_REQUESTED)
    assert (requested.actor_user, requested.refund, requested.idempotency_key) == (
        manager, refund, f"refund_requested:{refund.pk}"
    )
    audit = AuditEvent.objects.get(action="refund.requested")
    assert (audit.organization, audit.actor_type, audit.actor_user, audit.transaction, audit.patient) == (
        organization, ActorType.STAFF, manager, payment, payment.patient
    )
    assert audit.changes == {"refund_id": refund.pk, "amount_cents": 5000, "reason": "Copay charged twice"}
    sandbox_refund = SandboxRefund.objects.get()
    assert (sandbox_refund.id, sandbox_refund.amount_cents, sandbox_refund.idempotency_key) == (
        refund.gateway_refund_id, 5000, str(refund.idempotency_key)
    )
    assert SandboxCharge.objects.get(id=payment.gateway_charge_id).amount_refunded_cents == 5000


def test_partial_refunds_up_to_the_charge(organization, manager, administrator, payment):
    first = refund_create(
        organization=organization, actor=manager, transaction=payment, amount_cents=1250, reason="Lab fee waived"
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 1250)
    assert transaction_refundable_cents(transaction=payment) == 3750

    second = refund_create(
        organization=organization, actor=administrator, transaction=payment, amount_cents=3750, reason="Visit cancelled"
    )
    payment.refresh_from_db()
    assert (first.status, second.status) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.REFUNDED, 5000)
    assert [e[:2] for e in _events(payment)] == [
        (Kind.CHARGE_SUCCEEDED, 5000),
        (Kind.REFUND_REQUESTED, 1250),
        (Kind.REFUND_SUCCEEDED, 1250),
        (Kind.REFUND_REQUESTED, 3750),
        (Kind.REFUND_SUCCEEDED, 3750),
    ]
    assert list(AuditEvent.objects.filter(action="refund.requested").order_by("id").values_list("actor_user", flat=True)) == [
        manager.pk, administrator.pk
    ]


def test_over_refund_is_refused_and_changes_nothing(organization, manager, payment):
    refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=3750, reason="Overpaid")
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1251, reason="Again")

    assert error.value.message == "You can refund at most $12.50 of this payment."
    assert money_state(payment) == before


def test_refund_of_a_fully_refunded_payment_is_refused(organization, manager, payment):
    refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=5000, reason="Overpaid")
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1, reason="Again")

    assert error.value.message == "This payment has already been refunded in full."
    assert money_state(payment) == before


@pytest.mark.parametrize("reason", ["", "   "])
def test_reason_is_required(organization, manager, payment, reason):
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=100, reason=reason)

    assert error.value.message == "Enter a reason for the refund. It is kept in the transaction's history."
    assert money_state(payment) == before


@pytest.mark.parametrize("amount_cents", [0, -500])
def test_amount_must_be_positive(organization, manager, payment, amount_cents):
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(
            organization=organization, actor=manager, transaction=payment, amount_cents=amount_cents, reason="Overpaid"
        )

    assert error.value.message == "The refund amount must be more than $0.00."
    assert money_state(payment) == before


def test_staff_cannot_refund(organization, staff_user, payment):
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=staff_user, transaction=payment, amount_cents=100, reason="Overpaid")

    assert error.value.message == "In this organization, only administrators and managers can refund payments."
    assert money_state(payment) == before


def test_a_manager_of_another_organization_cannot_refund(organization, other_organization, payment):
    from tests.factories import MembershipFactory
    from org_profile.enums import Role

    outsider = MembershipFactory(organization=other_organization, role=Role.MANAGER).user
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=outsider, transaction=payment, amount_cents=100, reason="Overpaid")
    assert error.value.message == "In this organization, only administrators and managers can refund payments."

    with pytest.raises(ApplicationError) as error:
        refund_create(
            organization=other_organization, actor=outsider, transaction=payment, amount_cents=100, reason="Overpaid"
        )
    assert error.value.message == "This transaction does not exist."
    assert money_state(payment) == before


def test_unpaid_and_failed_payments_cannot_be_refunded(organization, manager, patient, location):
    pending = checkout_transaction(organization=organization, patient=patient, location=location)
    failed = card_pay(checkout_transaction(organization=organization, patient=patient, location=location), card_number=DECLINED)
    assert failed.status == TransactionStatus.FAILED

    for transaction, label in [(pending, "pending"), (failed, "failed")]:
        before = money_state(transaction)
        with pytest.raises(ApplicationError) as error:
            refund_create(
                organization=organization, actor=manager, transaction=transaction, amount_cents=100, reason="Overpaid"
            )
        assert error.value.message == f"This payment is {label}: nothing was charged, so there is nothing to refund."
        assert money_state(transaction) == before


def test_refund_of_a_5126_card_fails_and_shows_in_the_timeline(organization, manager, patient, location):
    payment = paid_transaction(
        organization=organization, patient=patient, location=location, amount_cents=5000, card_number=REFUND_FAILS
    )
    assert payment.status == TransactionStatus.SUCCEEDED

    with pytest.raises(RefundFailed) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=2000, reason="Overpaid")

    message = "The card issuer declined the refund. Refund the patient another way."
    assert error.value.message == f"The refund of $20.00 failed: {message}"
    refund = Refund.objects.get()
    payment.refresh_from_db()
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED, message)
    assert (payment.status, payment.refunded_cents, payment.last_error) == (TransactionStatus.SUCCEEDED, 0, message)
    # A failed refund holds nothing back.
    assert transaction_refundable_cents(transaction=payment) == 5000
    assert [e[:2] for e in _events(payment)] == [
        (Kind.CHARGE_SUCCEEDED, 5000),
        (Kind.REFUND_REQUESTED, 2000),
        (Kind.REFUND_FAILED, 2000),
    ]
    failed = [(entry.title, entry.detail, entry.actor) for entry in transaction_timeline(transaction=payment) if entry.is_error]
    assert failed == [("Refund failed", message, "Payment processor")]


def test_a_refusal_by_the_processor_is_recorded_as_failed(organization, manager, payment):
    # The clinic refunded the charge in full at the processor's own dashboard, behind our back.
    SandboxCharge.objects.filter(id=payment.gateway_charge_id).update(amount_refunded_cents=5000)

    with pytest.raises(RefundFailed) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1000, reason="Overpaid")

    gateway_message = "The Sandbox refused the refund: only 0 cents of this charge remain refundable."
    assert error.value.message == f"The payment processor refused the refund of $10.00: {gateway_message} Nothing was refunded."
    refund = Refund.objects.get()
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED, gateway_message)
    assert [e[:2] for e in _events(payment)] == [
        (Kind.CHARGE_SUCCEEDED, 5000),
        (Kind.REFUND_REQUESTED, 1000),
        (Kind.REFUND_FAILED, 1000),
    ]
    assert SandboxRefund.objects.count() == 0
    assert transaction_refundable_cents(transaction=payment) == 5000


def test_a_transient_failure_then_retry_refunds_exactly_once(organization, manager, payment, monkeypatch):
    real_refund = SandboxGateway.refund
    calls = []

    def refund_then_time_out(self, *, refund):
        # The processor makes the refund, but its answer never reaches us.
        calls.append(str(refund.idempotency_key))
        real_refund(self, refund=refund)
        if len(calls) == 1:
            raise GatewayUnavailable("The Sandbox did not answer in time.")
        return real_refund(self, refund=refund)

    monkeypatch.setattr(SandboxGateway, "refund", refund_then_time_out)

    refund = refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=5000, reason="Overpaid")

    assert refund.status == RefundStatus.REQUESTED
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.SUCCEEDED, 0)
    # Its amount stays reserved: nothing more can be refunded meanwhile.
    assert transaction_refundable_cents(transaction=payment) == 0
    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=100, reason="Again")
    assert error.value.message == "Nothing is left to refund: $50.00 of this payment is already waiting to be refunded."

    retried = refund_retry(organization=organization, actor=manager, refund=refund)

    assert retried.status == RefundStatus.SUCCEEDED
    assert calls == [str(refund.idempotency_key), str(refund.idempotency_key)]
    assert SandboxRefund.objects.count() == 1
    assert SandboxCharge.objects.get(id=payment.gateway_charge_id).amount_refunded_cents == 5000
    assert TransactionEvent.objects.filter(transaction=payment, kind=Kind.REFUND_SUCCEEDED).count() == 1
    assert Refund.objects.count() == 1
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.REFUNDED, 5000)
    retry_audit = AuditEvent.objects.get(action="refund.retried")
    assert (retry_audit.actor_user, retry_audit.transaction, retry_audit.changes) == (
        manager, payment, {"refund_id": refund.pk, "amount_cents": 5000}
    )

    with pytest.raises(ApplicationError) as error:
        refund_retry(organization=organization, actor=manager, refund=refund)
    assert error.value.message == "This refund has already succeeded; there is nothing to retry."


def test_staff_cannot_retry_a_refund(organization, manager, staff_user, payment, monkeypatch):
    def unavailable(self, *, refund):
        raise GatewayUnavailable("The Sandbox did not answer in time.")

    monkeypatch.setattr(SandboxGateway, "refund", unavailable)
    refund = refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=700, reason="Overpaid")
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_retry(organization=organization, actor=staff_user, refund=refund)

    assert error.value.message == "In this organization, only administrators and managers can refund payments."
    assert money_state(payment) == before


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_two_managers_refunding_at_once_never_refund_more_than_was_charged(organization, manager, administrator, patient, location):
    import threading

    from django.db import connection

    payment = paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)
    barrier = threading.Barrier(2)
    outcomes = {}

    def refund(actor):
        try:
            barrier.wait()
            outcomes[actor.pk] = refund_create(
                organization=organization, actor=actor, transaction=payment, amount_cents=3000, reason="Overpaid"
            ).status
        except ApplicationError as error:
            outcomes[actor.pk] = error.message
        finally:
            connection.close()

    threads = [threading.Thread(target=refund, args=(actor,)) for actor in (manager, administrator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(str(outcome) for outcome in outcomes.values()) == [
        "You can refund at most $20.00 of this payment.",
        RefundStatus.SUCCEEDED,
    ]
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 3000)
    assert Refund.objects.count() == 1
    assert SandboxRefund.objects.get().amount_cents == 3000
    assert TransactionEvent.objects.filter(transaction=payment, kind=Kind.REFUND_SUCCEEDED).count() == 1
