import pytest
from django.urls import reverse

from lumapay.models import ActorType, AuditEvent
from transactions.enums import RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.base import GatewayUnavailable
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import Refund, SandboxRefund, TransactionEvent

from .payments import REFUND_FAILS, money_state, paid_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)


def _detail_url(transaction):
    return reverse("transactions:transaction_detail", args=[transaction.pk])


def _refund_url(transaction):
    return reverse("transactions:transaction_refund", args=[transaction.pk])


def _messages(response):
    return [str(message) for message in response.context["messages"]]


def test_detail_shows_the_payment_and_records_the_view(client_for, manager, payment, patient, location):
    response = client_for(manager).get(_detail_url(payment), REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    body = response.content.decode()
    for text in [
        "$50.00",
        "Succeeded",
        "Visa ···· 4242",
        payment.authorization_code,
        location.name,
        "Office visit copay",
        reverse("patients:profile", args=[patient.pk]),
        "Payment succeeded",
    ]:
        assert text in body
    assert response.context["refundable_cents"] == 5000
    viewed = AuditEvent.objects.get(action="transaction.viewed")
    assert (viewed.actor_type, viewed.actor_user, viewed.transaction, viewed.patient, viewed.ip_address) == (
        ActorType.STAFF, manager, payment, patient, "203.0.113.9"
    )


def test_managers_see_the_refund_form_and_staff_do_not(client_for, manager, staff_user, payment):
    manager_page = client_for(manager).get(_detail_url(payment))
    assert manager_page.context["form"] is not None
    assert 'action="%s"' % _refund_url(payment) in manager_page.content.decode()
    assert "Refund in full ($50.00)" in manager_page.content.decode()

    staff_page = client_for(staff_user).get(_detail_url(payment))
    assert staff_page.status_code == 200
    assert staff_page.context["form"] is None
    assert _refund_url(payment) not in staff_page.content.decode()


def test_staff_cannot_post_a_refund(client_for, staff_user, payment):
    before = money_state(payment)

    response = client_for(staff_user).post(_refund_url(payment), {"scope": "full", "reason": "Overpaid"})

    assert response.status_code == 403
    assert money_state(payment) == before


def test_manager_refunds_in_full(client_for, manager, payment):
    response = client_for(manager).post(_refund_url(payment), {"scope": "full", "reason": "Insurance paid"}, follow=True)

    assert response.redirect_chain == [(_detail_url(payment), 302)]
    assert _messages(response) == ["Refunded $50.00 to the patient's card."]
    refund = Refund.objects.get()
    assert (refund.amount_cents, refund.status, refund.reason, refund.requested_by) == (
        5000, RefundStatus.SUCCEEDED, "Insurance paid", manager
    )
    payment.refresh_from_db()
    assert payment.status == TransactionStatus.REFUNDED
    assert response.context["form"] is None  # nothing left to refund


def test_administrator_refunds_part(client_for, administrator, payment):
    response = client_for(administrator).post(
        _refund_url(payment), {"scope": "partial", "amount": "$12.50", "reason": "Lab fee waived"}, follow=True
    )

    assert _messages(response) == ["Refunded $12.50 to the patient's card."]
    assert Refund.objects.get().amount_cents == 1250
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 1250)
    assert response.context["refundable_cents"] == 3750
    assert "Refund in full ($37.50)" in response.content.decode()


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"scope": "partial", "amount": "50.01", "reason": "Overpaid"}, "amount", "The amount cannot be more than $50.00."),
        ({"scope": "partial", "amount": "0", "reason": "Overpaid"}, "amount", "The amount must be more than $0.00."),
        ({"scope": "partial", "amount": "ten", "reason": "Overpaid"}, "amount", "“ten” is not an amount. Enter dollars and cents, such as 45.00."),
        ({"scope": "full", "reason": ""}, "reason", "Enter a reason for the refund."),
    ],
)
def test_bad_refund_input_shows_the_form_again(client_for, manager, payment, data, field, message):
    before = money_state(payment)

    response = client_for(manager).post(_refund_url(payment), data)

    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert money_state(payment) == before


def test_a_failed_refund_is_shown_with_the_processors_message(client_for, manager, organization, patient, location):
    payment = paid_transaction(
        organization=organization, patient=patient, location=location, amount_cents=5000, card_number=REFUND_FAILS
    )

    response = client_for(manager).post(_refund_url(payment), {"scope": "full", "reason": "Overpaid"})

    message = "The card issuer declined the refund. Refund the patient another way."
    assert response.status_code == 400
    assert _messages(response) == [f"The refund of $50.00 failed: {message}"]
    body = response.content.decode()
    assert '<li class="error">\n      <strong>Refund failed</strong>' in body
    assert f'<div class="errorlist">{message}</div>' in body
    assert Refund.objects.get().status == RefundStatus.FAILED
    # The failed refund reserves nothing: the full amount can still be refunded another way.
    assert response.context["refundable_cents"] == 5000


def test_a_stuck_refund_can_be_retried_from_the_page(client_for, manager, payment, monkeypatch):
    real_refund = SandboxGateway.refund

    def unavailable(self, *, refund):
        raise GatewayUnavailable("The Sandbox did not answer in time.")

    monkeypatch.setattr(SandboxGateway, "refund", unavailable)
    client = client_for(manager)
    response = client.post(_refund_url(payment), {"scope": "full", "reason": "Overpaid"}, follow=True)

    refund = Refund.objects.get()
    assert refund.status == RefundStatus.REQUESTED
    assert _messages(response) == [
        "The payment processor has not confirmed the refund of $50.00 yet. The amount stays reserved; "
        "press Retry in the refunds table to send it again."
    ]
    assert f'name="retry_refund" value="{refund.pk}"' in response.content.decode()
    assert response.context["refundable_cents"] == 0

    monkeypatch.setattr(SandboxGateway, "refund", real_refund)
    response = client.post(_refund_url(payment), {"retry_refund": refund.pk}, follow=True)

    assert _messages(response) == ["Refunded $50.00 to the patient's card."]
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert SandboxRefund.objects.count() == 1
    assert TransactionEvent.objects.filter(transaction=payment, kind=Kind.REFUND_SUCCEEDED).count() == 1
    assert 'name="retry_refund"' not in response.content.decode()


def test_retrying_another_transactions_refund_is_404(client_for, manager, organization, payment, monkeypatch):
    def unavailable(self, *, refund):
        raise GatewayUnavailable("The Sandbox did not answer in time.")

    monkeypatch.setattr(SandboxGateway, "refund", unavailable)
    client = client_for(manager)
    client.post(_refund_url(payment), {"scope": "full", "reason": "Overpaid"})
    refund = Refund.objects.get()
    other = paid_transaction(organization=organization, amount_cents=2000)

    response = client.post(_refund_url(other), {"retry_refund": refund.pk})

    assert response.status_code == 404
    assert client.post(_refund_url(payment), {"retry_refund": "not-a-number"}).status_code == 404
    assert Refund.objects.get().status == RefundStatus.REQUESTED


def test_timeline_merges_ledger_and_audit_events_in_time_order(client_for, manager, payment):
    client = client_for(manager)
    client.post(_refund_url(payment), {"scope": "partial", "amount": "10", "reason": "Lab fee waived"})

    timeline = client.get(_detail_url(payment)).context["timeline"]

    assert [(entry.title, entry.actor, entry.amount_cents, entry.detail, entry.is_error) for entry in timeline] == [
        ("Payment succeeded", "Sandbox (test payments only)", 5000, "", False),
        ("Receipt e-mailed", "LumaPay", None, "By E-mail", False),
        ("Refund requested", str(manager), 1000, "Reason: Lab fee waived", False),
        ("Refund succeeded", "Sandbox (test payments only)", 1000, "", False),
    ]
    assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)


def test_timeline_includes_the_payment_requests_audit_trail(organization, manager, payment):
    from lumapay.audit import audit_event_record
    from tests.factories import PatientFactory
    from transactions.models import PaymentRequest
    from transactions.selectors.ledger import transaction_timeline
    from django.utils import timezone
    import datetime

    request = PaymentRequest.objects.create(
        organization=organization, patient=payment.patient, location=payment.location, kind="copay",
        billing_item="Office visit copay", amount_cents=5000, expires_at=timezone.now() + datetime.timedelta(days=30),
    )
    payment.payment_request = request
    payment.save(update_fields=["payment_request"])
    other_request = PaymentRequest.objects.create(
        organization=organization, patient=PatientFactory(organization=organization), location=payment.location,
        kind="copay", billing_item="Other", amount_cents=100, expires_at=timezone.now() + datetime.timedelta(days=30),
    )
    for action, actor_type, changes, target in [
        ("payment_request.sent", ActorType.STAFF, {"channels": ["email", "sms"], "status": [None, "open"]}, request),
        ("payment_request.delivery_failed", ActorType.SYSTEM, {"channel": "sms", "error_message": "The SMS provider rejected the number."}, request),
        ("pay_link.opened", ActorType.PATIENT, {"state": "open"}, request),
        ("pay_link.verification_failed", ActorType.PATIENT, {"failed_verification_count": [0, 1]}, request),
        ("pay_link.verification_refused", ActorType.PATIENT, {"reason": "link_locked"}, request),
        ("payment_request.resent", ActorType.STAFF, {}, other_request),
    ]:
        audit_event_record(
            organization=organization, action=action, actor_type=actor_type,
            actor_user=manager if actor_type == ActorType.STAFF else None, payment_request=target, changes=changes,
        )
    audit_event_record(
        organization=organization, action="transaction.viewed", actor_type=ActorType.STAFF, actor_user=manager,
        transaction=payment,
    )

    audit_entries = [
        (entry.title, entry.actor, entry.detail, entry.is_error)
        for entry in transaction_timeline(transaction=payment)
        if entry.source == "audit"
    ]

    assert audit_entries == [
        ("Receipt e-mailed", "LumaPay", "By E-mail", False),
        ("Payment request sent", str(manager), "By E-mail and SMS", False),
        ("Payment link not delivered", "LumaPay", "The SMS provider rejected the number.", True),
        ("Payment link opened", "Patient", "", False),
        ("Date of birth did not match", "Patient", "", True),
        ("Date of birth check refused", "Patient", "The link was locked after too many wrong dates of birth.", True),
    ]
