"""A transaction's audit timeline, built from a whole lifecycle through the real services, the pay
pages and the Sandbox: the request sent, the patient's wrong and right date of birth, a declined
card, the payment, a partial refund and a refund that fails, then staff looking at it."""

import datetime

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestKind, TransactionEventKind as Kind
from transactions.models import SandboxCharge, Transaction, TransactionEvent
from transactions.selectors.ledger import timeline_problems, transaction_timeline
from transactions.services.payment_requests import payment_request_send
from transactions.services.refunds import RefundFailed, refund_create

from .pay_support import DECLINED, INSUFFICIENT_FUNDS, SUCCEEDS, card_fields, checkout_path, dob_submit, pay_url

pytestmark = pytest.mark.django_db

PATIENT_IP = "198.51.100.7"
REFUND_FAILS = "4000 0000 0000 5126"
ISSUER_REFUSED = "The card issuer declined the refund. Refund the patient another way."


def _staff(user) -> str:
    return f"{user.get_full_name()} ({user.email})"


def _entries(transaction):
    return [
        (entry.title, entry.actor, entry.amount_cents, entry.detail, entry.is_error)
        for entry in transaction_timeline(transaction=transaction)
    ]


def _request_sent(organization, administrator, patient, location, capture):
    with capture(execute=True):
        return payment_request_send(
            organization=organization,
            actor=administrator,
            patient=patient,
            location=location,
            kind=PaymentRequestKind.COPAY,
            billing_item="Office visit copay",
            amount_cents=4500,
            note="For your visit on Monday",
        )


def _patient_pays(payment_request, cards, capture):
    """The patient, on their own phone, opens the link, gets the date of birth wrong once, then
    right, and pays on the Sandbox's page with each card in turn; the Sandbox's events take the
    webhook path."""
    client = Client(REMOTE_ADDR=PATIENT_IP)
    patient = payment_request.patient
    assert client.get(pay_url("verify", payment_request)).status_code == 200
    assert dob_submit(client, payment_request, patient.date_of_birth + datetime.timedelta(days=1)).status_code == 200
    assert dob_submit(client, payment_request).status_code == 302
    sandbox_path = checkout_path(client, payment_request)
    for card in cards:
        with capture(execute=True):
            client.post(sandbox_path, card_fields(card))
    with capture(execute=True):
        assert client.get(pay_url("done", payment_request)).status_code == 200
    return Transaction.objects.get(payment_request=payment_request, charged_cents__gt=0)


def test_the_whole_lifecycle_in_order_with_actors_the_fee_and_the_errors(
    client_for, organization, location, patient, administrator, manager, django_capture_on_commit_callbacks
):
    # given a request sent by an administrator, which the patient pays after a declined card
    payment_request = _request_sent(organization, administrator, patient, location, django_capture_on_commit_callbacks)
    transaction = _patient_pays(payment_request, [DECLINED, SUCCEEDS], django_capture_on_commit_callbacks)
    assert (transaction.charged_cents, transaction.fee_cents) == (4500, 161)  # 2.9% + 30¢

    # when a manager refunds part of it, and a second refund is refused by the processor because
    # the rest was refunded at the processor's own dashboard, behind LumaPay's back
    refund_create(organization=organization, actor=manager, transaction=transaction, amount_cents=2000, reason="Lab fee waived")
    SandboxCharge.objects.filter(id=transaction.gateway_charge_id).update(amount_refunded_cents=F("amount_cents"))
    with pytest.raises(RefundFailed):
        refund_create(organization=organization, actor=manager, transaction=transaction, amount_cents=1000, reason="Overpaid")
    staff_client = client_for(manager)
    page = staff_client.get(reverse("transactions:transaction_detail", args=[transaction.pk]))
    assert staff_client.get(reverse("transactions:transaction_receipt", args=[transaction.pk])).status_code == 200

    # then the timeline tells all of it, oldest first, each step with who did it
    transaction.refresh_from_db()
    refused = "The Sandbox refused the refund: only 0 cents of this charge remain refundable."
    patient_actor = f"Patient ({PATIENT_IP})"
    assert _entries(transaction) == [
        ("Payment request sent", _staff(administrator), None, "By e-mail and text message", False),
        ("Message with the link handed to the provider", "LumaPay", None, "By e-mail", False),
        ("Message with the link handed to the provider", "LumaPay", None, "By text message", False),
        ("Payment link opened", patient_actor, None, "", False),
        ("Date of birth did not match", patient_actor, None, "Wrong date of birth, attempt 1 on this link.", False),
        ("Date of birth confirmed", patient_actor, None, "", False),
        ("Checkout started", patient_actor, 4500, "", False),
        ("Payment failed", "Payment processor", None, "Your card was declined.", False),
        ("Payment succeeded", "Payment processor", 4500, f"Visa ···· 4242, authorization code {transaction.authorization_code}", False),
        ("Processing fee −$1.61, net $43.39", "Payment processor", None, "", False),
        ("Receipt e-mailed", "LumaPay", None, "By e-mail", False),
        ("Refund requested", _staff(manager), 2000, "Reason: Lab fee waived", False),
        ("Refund succeeded", "Payment processor", 2000, "", False),
        ("Refund requested", _staff(manager), 1000, "Reason: Overpaid", False),
        ("Refund failed", "Payment processor", 1000, refused, True),
        ("Viewed once by 1 staff member", _staff(manager), None, "", False),
        ("Receipt downloaded", _staff(manager), None, "", False),
    ]
    timeline = transaction_timeline(transaction=transaction)
    assert [entry.at for entry in timeline] == sorted(entry.at for entry in timeline)
    # The wrong date of birth is worth noticing, but it is not a problem with the payment.
    assert [entry.title for entry in timeline if entry.is_warning] == ["Date of birth did not match"]
    failed_charge = TransactionEvent.objects.get(transaction=transaction, kind=Kind.CHARGE_FAILED)
    failed_refund = TransactionEvent.objects.get(transaction=transaction, kind=Kind.REFUND_FAILED)
    # The declined card is history (the next card paid); the refused refund is still a problem.
    assert [(entry.anchor, entry.reference) for entry in timeline_problems(timeline)] == [
        (f"ledger-{failed_refund.pk}", ""),  # refused outright: the processor made no refund
    ]
    assert [entry.anchor for entry in timeline if entry.is_resolved] == [f"ledger-{failed_charge.pk}"]
    assert failed_charge.gateway_reference.startswith("ch_sbx_")
    assert (transaction.has_unresolved_problems, transaction.last_error) == (True, refused)

    # and the staff page leads with the one problem, linked to its entry, in the processor's words,
    # and keeps the declined card on the timeline, not flagged
    body = page.content.decode()
    assert "1 problem with this payment" in body
    assert f'<a href="#ledger-{failed_charge.pk}">' not in body
    assert f'<li><a href="#ledger-{failed_refund.pk}">Refund failed ($10.00)</a>: {refused}</li>' in body
    assert f'<li id="ledger-{failed_charge.pk}" class="">' in body
    assert "resolved by a later success" in body
    assert f'<li id="ledger-{failed_refund.pk}" class="error">' in body
    assert body.count('<span class="flag-error"><span aria-hidden="true">!</span> Error</span>') == 1
    assert "Processing fee −$1.61, net $43.39" in body
    # the patient's own steps carry the address they came from, recorded when they happened
    assert set(
        AuditEvent.objects.filter(payment_request=payment_request, actor_type="patient").values_list("ip_address", flat=True)
    ) == {PATIENT_IP}


def test_a_refund_of_a_5126_card_fails_with_the_issuers_message(
    client_for, organization, location, patient, administrator, manager, django_capture_on_commit_callbacks
):
    payment_request = _request_sent(organization, administrator, patient, location, django_capture_on_commit_callbacks)
    transaction = _patient_pays(payment_request, [INSUFFICIENT_FUNDS, REFUND_FAILS], django_capture_on_commit_callbacks)

    with pytest.raises(RefundFailed):
        refund_create(organization=organization, actor=manager, transaction=transaction, amount_cents=1500, reason="Overpaid")

    entries = _entries(transaction)
    assert entries[7:] == [
        ("Payment failed", "Payment processor", None, "Your card has insufficient funds.", False),
        ("Payment succeeded", "Payment processor", 4500, f"Visa ···· 5126, authorization code {transaction.authorization_code}", False),
        ("Processing fee −$1.61, net $43.39", "Payment processor", None, "", False),
        ("Receipt e-mailed", "LumaPay", None, "By e-mail", False),
        ("Refund requested", _staff(manager), 1500, "Reason: Overpaid", False),
        ("Refund failed", "Payment processor", 1500, ISSUER_REFUSED, True),
    ]
    body = client_for(manager).get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()
    assert "1 problem with this payment" in body
    assert f"Refund failed ($15.00)</a>: {ISSUER_REFUSED}</li>" in body


def test_an_earlier_expired_checkout_of_the_same_request_is_part_of_the_story(
    client, organization, location, patient, administrator, django_capture_on_commit_callbacks
):
    # given a declined card on a checkout that then expired
    payment_request = _request_sent(organization, administrator, patient, location, django_capture_on_commit_callbacks)
    dob_submit(client, payment_request)
    first_path = checkout_path(client, payment_request)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(first_path, card_fields(DECLINED))
    first = Transaction.objects.get(payment_request=payment_request)
    Transaction.objects.filter(pk=first.pk).update(gateway_checkout_expires_at=timezone.now() - datetime.timedelta(minutes=1))

    # when the patient comes back and pays on a new checkout
    second_path = checkout_path(client, payment_request)
    assert second_path != first_path
    with django_capture_on_commit_callbacks(execute=True):
        client.post(second_path, card_fields(SUCCEEDS))
    second = Transaction.objects.get(payment_request=payment_request, charged_cents__gt=0)

    # then the paid transaction's timeline shows the earlier attempt, saying where it happened
    ledger = [
        (entry.title, entry.other_transaction_id)
        for entry in transaction_timeline(transaction=second)
        if entry.source == "ledger"
    ]
    assert ledger == [
        ("Checkout started", first.pk),
        ("Payment failed", first.pk),
        ("Checkout started", None),
        ("Payment succeeded", None),
    ]
    # and the decline on the first checkout is history, there and on the dashboard's row of the first
    assert timeline_problems(transaction_timeline(transaction=second)) == []
    assert timeline_problems(transaction_timeline(transaction=first)) == []
    assert [entry.title for entry in transaction_timeline(transaction=second) if entry.is_resolved] == ["Payment failed"]
    first.refresh_from_db()
    assert (first.status, first.has_unresolved_problems, first.last_error) == ("failed", False, "")
