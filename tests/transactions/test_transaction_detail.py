import datetime
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import dateformat, timezone

from lumapay.audit import audit_event_record
from lumapay.models import ActorType, AuditEvent
from transactions.enums import RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.base import GatewayUnavailable
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import PaymentRequest, Refund, SandboxRefund, TransactionEvent
from transactions.selectors.ledger import transaction_timeline

from ..factories import PatientFactory, UserFactory
from .payments import REFUND_FAILS, money_state, paid_transaction

pytestmark = pytest.mark.django_db

REFUND_FAILS_MESSAGE = "The card issuer declined the refund. Refund the patient another way."


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)


def _detail_url(transaction):
    return reverse("transactions:transaction_detail", args=[transaction.pk])


def _refund_url(transaction):
    return reverse("transactions:transaction_refund", args=[transaction.pk])


def _messages(response):
    return [str(message) for message in response.context["messages"]]


def _staff(user) -> str:
    return f"{user.get_full_name()} ({user.email})"


def _refund(client, transaction, data):
    """The form's two steps: post it (the confirmation page), then press "Confirm refund"."""
    confirmation = client.post(_refund_url(transaction), data)
    assert confirmation.status_code == 200, confirmation.content.decode()[:500]
    assert [t.name for t in confirmation.templates][0] == "transactions/dashboard/refund_confirm.html"
    return client.post(_refund_url(transaction), confirmation.context["fields"], follow=True)


def test_detail_shows_the_payment_and_records_the_view(client_for, manager, payment, patient, location):
    response = client_for(manager).get(_detail_url(payment), REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    body = response.content.decode()
    # The Sandbox's fee on $50.00: 2.9% + 30¢ = $1.75.
    assert payment.fee_cents == 175
    for text in [
        "<dt>Amount</dt><dd>$50.00</dd>",
        '<dt>Status</dt><dd><span class="status status-succeeded">Succeeded</span></dd>',
        "<dt>Vendor</dt><dd>Sandbox (test payments only)</dd>",
        f"<dt>Authorization code</dt><dd>{payment.authorization_code}</dd>",
        "<dt>Card</dt><dd>Visa ···· 4242</dd>",
        f"<dt>Processor reference</dt><dd>{payment.gateway_charge_id}</dd>",
        f"<dt>Location</dt><dd>{location.name}</dd>",
        "<dt>Billing item</dt><dd>Office visit copay</dd>",
        f'<dt>Patient</dt><dd><a href="{reverse("patients:profile", args=[patient.pk])}">{patient.full_name}</a></dd>',
        "<dt>Charged</dt><dd>$50.00</dd>",
        "<dt>Refunded</dt><dd>$0.00</dd>",
        "<dt>Processing fee</dt><dd>−$1.75</dd>",
        "<dt>Net of fee</dt><dd><strong>$48.25</strong></dd>",
        "<dt>Refundable</dt><dd>$50.00</dd>",
        "Processing fee −$1.75, net $48.25",
        reverse("transactions:transaction_receipt", args=[payment.pk]),
    ]:
        assert text in body, text
    assert response.context["net_cents"] == 4825
    assert response.context["problems"] == []
    viewed = AuditEvent.objects.get(action="transaction.viewed")
    assert (viewed.actor_type, viewed.actor_user, viewed.transaction, viewed.patient, viewed.ip_address) == (
        ActorType.STAFF, manager, payment, patient, "203.0.113.9"
    )


def test_times_are_shown_in_the_organizations_time_zone(client_for, organization, manager, payment):
    organization.timezone = "America/Los_Angeles"
    organization.save()

    body = client_for(manager).get(_detail_url(payment)).content.decode()

    local = timezone.localtime(payment.paid_at, zoneinfo.ZoneInfo("America/Los_Angeles"))
    paid = f"{dateformat.format(local, 'M j, Y, g:i A')} {dateformat.format(local, 'T')}"
    assert dateformat.format(local, "T") in ("PST", "PDT")
    assert f"<dt>Paid</dt><dd>{paid}</dd>" in body
    assert f">{paid}</time>" in body
    assert "Times are America/Los_Angeles." in body


def test_managers_see_the_refund_form_and_staff_do_not(client_for, manager, staff_user, payment):
    manager_page = client_for(manager).get(_detail_url(payment))
    assert manager_page.context["form"] is not None
    assert 'action="%s#refund-form"' % _refund_url(payment) in manager_page.content.decode()
    assert "Full amount ($50.00)" in manager_page.content.decode()

    staff_page = client_for(staff_user).get(_detail_url(payment))
    assert staff_page.status_code == 200
    assert staff_page.context["form"] is None
    assert _refund_url(payment) not in staff_page.content.decode()


def test_staff_cannot_post_a_refund(client_for, staff_user, payment):
    before = money_state(payment)

    response = client_for(staff_user).post(_refund_url(payment), {"amount": "50.00", "reason": "Overpaid"})
    confirmed = client_for(staff_user).post(
        _refund_url(payment), {"amount": "50.00", "reason": "Overpaid", "confirmed": "1"}
    )

    assert (response.status_code, confirmed.status_code) == (403, 403)
    assert money_state(payment) == before


def test_manager_refunds_in_full(client_for, manager, payment):
    response = _refund(client_for(manager), payment, {"amount": "50.00", "reason": "Insurance paid"})

    assert response.redirect_chain == [(_detail_url(payment), 302)]
    assert _messages(response) == ["Refunded $50.00 to the patient's card."]
    refund = Refund.objects.get()
    assert (refund.amount_cents, refund.status, refund.reason, refund.requested_by) == (
        5000, RefundStatus.SUCCEEDED, "Insurance paid", manager
    )
    payment.refresh_from_db()
    assert payment.status == TransactionStatus.REFUNDED
    assert response.context["form"] is None  # nothing left to refund
    assert "<dt>Net of fee</dt><dd><strong>−$1.75</strong></dd>" in response.content.decode()


def test_administrator_refunds_part(client_for, administrator, payment):
    response = _refund(
        client_for(administrator), payment, {"amount": "$12.50", "reason": "Lab fee waived"}
    )

    assert _messages(response) == ["Refunded $12.50 to the patient's card."]
    assert Refund.objects.get().amount_cents == 1250
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 1250)
    assert response.context["refundable_cents"] == 3750
    assert response.context["net_cents"] == 5000 - 1250 - 175
    assert "Full amount ($37.50)" in response.content.decode()


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"amount": "50.01", "reason": "Overpaid"}, "amount", "The amount cannot be more than $50.00."),
        ({"amount": "0", "reason": "Overpaid"}, "amount", "The amount must be more than $0.00."),
        ({"amount": "ten", "reason": "Overpaid"}, "amount", "“ten” is not an amount. Enter dollars and cents, such as 45.00."),
        ({"amount": "50.00", "reason": ""}, "reason", "Enter a reason for the refund."),
        ({"amount": "50.00", "reason": "", "confirmed": "1"}, "reason", "Enter a reason for the refund."),
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
    client = client_for(manager)
    confirmation = client.post(_refund_url(payment), {"amount": "50.00", "reason": "Overpaid"})

    response = client.post(_refund_url(payment), confirmation.context["fields"])

    assert response.status_code == 400
    assert _messages(response) == [f"The refund of $50.00 failed: {REFUND_FAILS_MESSAGE}"]
    failed_event = TransactionEvent.objects.get(transaction=payment, kind=Kind.REFUND_FAILED)
    body = response.content.decode()
    assert "1 problem with this payment" in body
    assert f'<li><a href="#ledger-{failed_event.pk}">Refund failed ($50.00)</a>: {REFUND_FAILS_MESSAGE}</li>' in body
    assert (
        f'<li id="ledger-{failed_event.pk}" class="error">\n'
        '      <span class="flag-error"><span aria-hidden="true">!</span> Error</span> <strong>Refund failed</strong> · $50.00'
    ) in body
    assert f'<div class="errorlist">{REFUND_FAILS_MESSAGE}</div>' in body
    assert Refund.objects.get().status == RefundStatus.FAILED
    # The failed refund reserves nothing: the full amount can still be refunded another way.
    assert response.context["refundable_cents"] == 5000
    assert [entry.anchor for entry in response.context["problems"]] == [f"ledger-{failed_event.pk}"]


def test_a_stuck_refund_can_be_retried_from_the_page(client_for, manager, payment, monkeypatch):
    real_refund = SandboxGateway.refund

    def unavailable(self, *, refund):
        raise GatewayUnavailable("The Sandbox did not answer in time.")

    monkeypatch.setattr(SandboxGateway, "refund", unavailable)
    client = client_for(manager)
    response = _refund(client, payment, {"amount": "50.00", "reason": "Overpaid"})

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
    _refund(client, payment, {"amount": "50.00", "reason": "Overpaid"})
    refund = Refund.objects.get()
    other = paid_transaction(organization=organization, amount_cents=2000)

    response = client.post(_refund_url(other), {"retry_refund": refund.pk})

    assert response.status_code == 404
    assert client.post(_refund_url(payment), {"retry_refund": "not-a-number"}).status_code == 404
    assert Refund.objects.get().status == RefundStatus.REQUESTED


def test_timeline_merges_ledger_and_audit_events_in_time_order(client_for, manager, payment):
    client = client_for(manager)
    _refund(client, payment, {"amount": "10", "reason": "Lab fee waived"})

    timeline = client.get(_detail_url(payment)).context["timeline"]

    assert [(entry.title, entry.actor, entry.amount_cents, entry.detail, entry.is_error) for entry in timeline] == [
        ("Payment succeeded", "Payment processor", 5000, f"Visa ···· 4242, authorization code {payment.authorization_code}", False),
        ("Processing fee −$1.75, net $48.25", "Payment processor", None, "", False),
        ("Receipt e-mailed", "LumaPay", None, "By e-mail", False),
        ("Refund requested", _staff(manager), 1000, "Reason: Lab fee waived", False),
        ("Refund succeeded", "Payment processor", 1000, "", False),
        ("Viewed 2 times by 1 staff member", _staff(manager), None, "", False),  # after the refund, and this page
    ]
    assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)
    refund = Refund.objects.get()
    assert timeline[4].reference == refund.gateway_refund_id
    assert timeline[0].reference == payment.gateway_charge_id


def test_timeline_includes_the_payment_requests_audit_trail(organization, manager, payment):
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
    for action, actor_type, changes, target, ip_address in [
        ("payment_request.sent", ActorType.STAFF, {"channels": ["email", "sms"], "status": [None, "open"]}, request, None),
        ("payment_request.delivery_failed", ActorType.SYSTEM, {"channel": "sms", "error_message": "The SMS provider rejected the number."}, request, None),
        ("pay_link.opened", ActorType.PATIENT, {"state": "open"}, request, "198.51.100.7"),
        ("pay_link.verification_failed", ActorType.PATIENT, {"failed_verification_count": [0, 1]}, request, "198.51.100.7"),
        ("pay_link.verification_refused", ActorType.PATIENT, {"reason": "link_locked"}, request, "198.51.100.7"),
        ("payment_request.resent", ActorType.STAFF, {}, other_request, None),
    ]:
        audit_event_record(
            organization=organization, action=action, actor_type=actor_type,
            actor_user=manager if actor_type == ActorType.STAFF else None, payment_request=target, changes=changes,
            ip_address=ip_address,
        )
    audit_event_record(
        organization=organization, action="transaction.viewed", actor_type=ActorType.STAFF, actor_user=manager,
        transaction=payment,
    )

    audit_entries = [
        (entry.title, entry.actor, entry.detail, entry.is_error, entry.is_warning)
        for entry in transaction_timeline(transaction=payment)
        if entry.source == "audit"
    ]

    assert audit_entries == [
        ("Receipt e-mailed", "LumaPay", "By e-mail", False, False),
        ("Payment request sent", _staff(manager), "By e-mail and text message", False, False),
        ("Message with the link not sent", "LumaPay", "By text message: The SMS provider rejected the number.", True, False),
        ("Payment link opened", "Patient (198.51.100.7)", "", False, False),
        ("Date of birth did not match", "Patient (198.51.100.7)", "Wrong date of birth, attempt 1 on this link.", False, True),
        ("Date of birth check refused", "Patient (198.51.100.7)", "The link was locked after too many wrong dates of birth.", False, True),
    ]


def test_a_staff_user_without_a_name_is_shown_by_e_mail(organization, payment):
    from org_profile.enums import Role
    from tests.factories import MembershipFactory

    nameless = UserFactory(first_name="", last_name="", email="front.desk@riverside.example")
    MembershipFactory(user=nameless, organization=organization, role=Role.MANAGER)
    audit_event_record(
        organization=organization, action="transaction.viewed", actor_type=ActorType.STAFF, actor_user=nameless,
        transaction=payment,
    )

    assert transaction_timeline(transaction=payment)[-1].actor == "front.desk@riverside.example"


def test_the_timeline_takes_five_queries_however_long_it_is(organization, manager, payment, django_assert_num_queries):
    from transactions.services.refunds import refund_create

    def count_queries():
        fresh = type(payment).objects.select_related("organization").get(pk=payment.pk)
        # Ledger, audit trail, exports, the views' aggregate and the last viewer.
        with django_assert_num_queries(5):
            return len(transaction_timeline(transaction=fresh))

    audit_event_record(
        organization=organization, action="transaction.viewed", actor_type=ActorType.STAFF, actor_user=manager,
        transaction=payment,
    )
    short = count_queries()
    for cents in (100, 200, 300):
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=cents, reason="Overpaid")
        audit_event_record(
            organization=organization, action="transaction.viewed", actor_type=ActorType.STAFF,
            actor_user=UserFactory(), transaction=payment,
        )

    assert count_queries() == short + 3 * 2  # each refund's requested and succeeded; the views stay one line
