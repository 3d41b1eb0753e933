"""Cards on file at the Sandbox processor, end to end: the patient saves a card from the pay link on
the Sandbox's own page (the same test cards as at checkout), staff charge it, hold a copay, capture
or release it, a hold lapses after 7 days, and every outcome also arrives as a signed event through
the webhook path and converges with what the service recorded."""

from datetime import timedelta

import pytest
from django.urls import reverse

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from transactions.enums import (
    CollectionRule,
    GatewayEventStatus,
    PaymentRequestKind,
    SavedCardStatus,
    TransactionEventKind as Kind,
    TransactionStatus,
)
from transactions.models import GatewayEvent, SavedCard, Transaction, TransactionEvent
from transactions.sandbox import processor
from transactions.sandbox.models import SandboxCharge, SandboxPaymentIntent
from transactions.selectors.ledger import transaction_timeline
from transactions.services.refunds import refund_create
from transactions.services.saved_cards import (
    authorization_capture,
    authorization_release,
    saved_card_charge,
    saved_card_remove,
)

from ..factories import AppointmentFactory
from .pay_support import AUTHENTICATE, DECLINED, SUCCEEDS, card_fields, checkout_path, path_of, pay_url, payment_request_make, text, verified

pytestmark = pytest.mark.django_db

DECLINED_WHEN_CHARGED = "4000 0000 0000 0341"
CONSENT = (
    "I authorize Riverside Family Medicine to keep this card on file with its payment processor and to charge it for "
    "my copays and balances, including holding a copay before a visit and charging it at check-in. I can remove "
    "the card at any time from a payment link or by asking the clinic."
)


def _paid(client, organization, patient):
    payment_request = payment_request_make(organization=organization, patient=patient, amount_cents=4500)
    verified(client, payment_request)
    response = client.post(checkout_path(client, payment_request), card_fields(SUCCEEDS))
    assert response.status_code == 302
    assert client.get(pay_url("done", payment_request)).status_code == 200
    return payment_request


def _to_card_page(client, payment_request) -> str:
    response = client.post(pay_url("card_save", payment_request), {"consent": "yes", "consent_text": CONSENT})
    assert response.status_code == 302, text(response)[:500]
    path = path_of(response["Location"])
    assert path.startswith("/sandbox/card/")
    return path


def _save(client, organization, patient, number=SUCCEEDS) -> SavedCard:
    """The patient pays, ticks the box, enters the card on the Sandbox's page and comes back."""
    payment_request = _paid(client, organization, patient)
    page = _to_card_page(client, payment_request)
    response = client.post(page, card_fields(number))
    assert response.status_code == 302, text(response)[:800]
    back = client.get(path_of(response["Location"]))
    assert back.status_code == 200
    return SavedCard.objects.get(patient=patient, gateway_setup_id=page.split("/")[3])


@pytest.fixture
def card(client, organization, patient):
    saved = _save(client, organization, patient)
    client.logout()
    return saved


def _ledger(transaction):
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "amount_cents"))


def _hold(organization, actor, card, location, *, appointment=None, **extra):
    appointment = appointment or AppointmentFactory(patient=card.patient, organization=organization, location=location)
    return saved_card_charge(
        organization=organization, actor=actor, saved_card=card, amount_cents=3000, kind=PaymentRequestKind.COPAY,
        billing_item="Office visit copay", location=location, appointment=appointment, hold_only=True, **extra,
    )  # fmt: skip


# -- saving a card on the Sandbox's page ---------------------------------------------------------------


def test_the_patient_saves_a_card_on_the_sandboxs_own_page(client, organization, patient):
    payment_request = _paid(client, organization, patient)
    confirmation = text(client.get(pay_url("done", payment_request)))
    assert "Save this card for future visits" in confirmation and CONSENT in confirmation

    page = _to_card_page(client, payment_request)
    shown = text(client.get(page))
    assert "Save a card for <strong>Riverside Family Medicine</strong>" in shown
    assert "Nothing is charged now." in shown and "4000 0000 0000 0341" in shown
    assert SavedCard.objects.get().status == SavedCardStatus.PENDING

    response = client.post(page, card_fields(SUCCEEDS))
    saved_page = text(client.get(path_of(response["Location"])))

    card = SavedCard.objects.get()
    assert (card.status, card.vendor, card.card_brand, card.card_last4, card.consent_text) == (
        SavedCardStatus.ACTIVE, "sandbox", "visa", "4242", CONSENT
    )
    assert card.gateway_customer_id.startswith("cus_sbx_") and card.gateway_payment_method_id.startswith("pm_sbx_")
    assert "4242" in saved_page
    # Back to the Sandbox's page once saved: back to the clinic, nothing saved twice.
    assert path_of(client.get(page)["Location"]) == path_of(response["Location"])
    assert AuditEvent.objects.filter(action="saved_card.saved").count() == 1


def test_a_declined_card_is_not_kept_and_the_authentication_card_is_kept_once_authenticated(client, organization, patient):
    payment_request = _paid(client, organization, patient)
    page = _to_card_page(client, payment_request)

    declined = client.post(page, card_fields(DECLINED))
    assert declined.status_code == 402 and "Your card was declined." in text(declined)
    assert "The card was not saved." in text(declined)

    asks = client.post(page, card_fields(AUTHENTICATE))
    assert path_of(asks["Location"]) == page + "authenticate/"
    failed = client.post(page + "authenticate/", {"result": "fail"})
    assert failed.status_code == 402
    assert SavedCard.objects.get().status == SavedCardStatus.PENDING

    client.post(page, card_fields(AUTHENTICATE))
    passed = client.post(page + "authenticate/", {"result": "pass"})
    client.get(path_of(passed["Location"]))
    card = SavedCard.objects.get()
    assert (card.status, card.card_last4) == (SavedCardStatus.ACTIVE, "3155")


def test_the_card_page_refuses_what_is_not_a_test_card_and_unknown_pages(client, organization, patient):
    page = _to_card_page(client, _paid(client, organization, patient))
    wrong = client.post(page, card_fields("4111 1111 1111 1111"))
    assert wrong.status_code == 400 and "use a test card" in text(wrong)
    assert client.get("/sandbox/card/seti_sbx_nothing/").status_code == 404


# -- charging, holding, capturing, releasing ----------------------------------------------------------


def test_staff_charge_a_sandbox_card_off_session_and_refund_it(organization, manager, location, card):
    charged = saved_card_charge(
        organization=organization, actor=manager, saved_card=card, amount_cents=2500,
        kind=PaymentRequestKind.BALANCE, billing_item="Balance after insurance", location=location,
    )  # fmt: skip

    intent = SandboxPaymentIntent.objects.get()
    assert (intent.status, intent.capture_method, intent.amount_cents, intent.client_reference) == (
        "succeeded", "automatic", 2500, str(charged.pk)
    )
    assert (charged.status, charged.charged_cents, charged.gateway_checkout_id, charged.card_last4) == (
        TransactionStatus.SUCCEEDED, 2500, intent.id, "4242"
    )
    assert charged.fee_cents == processor.sandbox_fee_cents(2500)
    assert _ledger(charged) == [(Kind.CHARGE_REQUESTED, 2500), (Kind.CHARGE_SUCCEEDED, 2500)]
    refund = refund_create(organization=organization, actor=manager, transaction=charged, amount_cents=500, reason="Overbilled")
    assert refund.status == "succeeded"
    assert SandboxCharge.objects.get(payment_intent=intent).amount_refunded_cents == 500


def test_a_card_declined_when_charged_is_a_failed_transaction(client, organization, patient, manager, location):
    card = _save(client, organization, patient, DECLINED_WHEN_CHARGED)
    assert card.status == SavedCardStatus.ACTIVE

    failed = _hold(organization, manager, card, location)

    assert (failed.status, failed.charged_cents, failed.last_error) == (TransactionStatus.FAILED, 0, "Your card was declined.")
    assert _ledger(failed) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_FAILED, 0)]


def test_a_copay_held_on_a_sandbox_card_is_captured_once(organization, manager, location, card):
    held = _hold(organization, manager, card, location)

    intent = SandboxPaymentIntent.objects.get()
    assert (held.status, held.charged_cents, intent.status, intent.capture_method) == (
        TransactionStatus.AUTHORIZED, 0, "requires_capture", "manual"
    )
    assert intent.capture_before - intent.authorized_at == timedelta(days=7)

    captured = authorization_capture(organization=organization, actor=manager, transaction=held)

    assert (captured.status, captured.charged_cents) == (TransactionStatus.SUCCEEDED, 3000)
    assert captured.platform_fee_cents == SandboxPaymentIntent.objects.get().application_fee_cents
    assert _ledger(captured) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    with pytest.raises(ApplicationError, match="there is no held amount"):
        authorization_capture(organization=organization, actor=manager, transaction=captured)
    assert SandboxCharge.objects.filter(payment_intent=intent, is_paid=True).count() == 1


def test_a_hold_released_at_the_sandbox(organization, manager, location, card):
    held = _hold(organization, manager, card, location)

    released = authorization_release(organization=organization, actor=manager, transaction=held, reason="Visit cancelled")

    assert (released.status, released.charged_cents) == (TransactionStatus.RELEASED, 0)
    assert SandboxPaymentIntent.objects.get().status == "canceled"
    with pytest.raises(ApplicationError):
        authorization_capture(organization=organization, actor=manager, transaction=released)


def test_a_hold_lapses_after_seven_days_and_capturing_it_says_why(organization, manager, location, card):
    held = _hold(organization, manager, card, location)
    processor.hold_age(held.gateway_checkout_id, by=timedelta(days=7, minutes=1))

    with pytest.raises(ApplicationError, match="The hold lapsed on .* 7 days after it was made, and can no longer be captured"):
        authorization_capture(organization=organization, actor=manager, transaction=held)

    held.refresh_from_db()
    intent = SandboxPaymentIntent.objects.get()
    assert (held.status, held.charged_cents, held.hold_claimed_at) == (TransactionStatus.RELEASED, 0, None)
    assert (intent.status, intent.cancellation_reason) == ("canceled", "expired")
    released = TransactionEvent.objects.get(transaction=held, kind=Kind.AUTHORIZATION_RELEASED)
    assert "lapsed after 7 days" in released.message
    assert any("lapsed after 7 days" in entry.detail for entry in transaction_timeline(transaction=held))


def test_the_sandboxs_own_sweep_lets_old_holds_lapse(organization, manager, location, card):
    old, fresh = _hold(organization, manager, card, location), _hold(organization, manager, card, location)
    processor.hold_age(old.gateway_checkout_id, by=timedelta(days=8))

    assert processor.holds_lapse() == 1
    assert processor.holds_lapse() == 0
    statuses = dict(SandboxPaymentIntent.objects.values_list("client_reference", "status"))
    assert statuses == {str(old.pk): "canceled", str(fresh.pk): "requires_capture"}


def test_a_removed_card_is_forgotten_by_the_sandbox(organization, manager, location, card):
    saved_card_remove(saved_card=card, actor=manager)
    card.refresh_from_db()

    assert card.status == SavedCardStatus.REMOVED
    assert card.gateway_payment_method_id
    with pytest.raises(processor.SandboxError, match="no such card"):
        processor.payment_intent_create(
            organization_id=organization.pk, customer_id=card.gateway_customer_id,
            payment_method_id=card.gateway_payment_method_id, amount_cents=100, currency="usd", capture=True,
            client_reference="1", idempotency_key="after-removal",
        )  # fmt: skip


def test_lumapay_holds_by_rule_on_the_sandbox_with_a_callers_key_once(organization, location, card):
    appointment = AppointmentFactory(patient=card.patient, organization=organization, location=location)

    first = _hold(organization, None, card, location, appointment=appointment, rule=CollectionRule.HOLD_BEFORE_VISIT, idempotency_key="k-1")
    again = _hold(organization, None, card, location, appointment=appointment, rule=CollectionRule.HOLD_BEFORE_VISIT, idempotency_key="k-1")

    assert again == first and Transaction.objects.filter(appointment=appointment).count() == 1
    assert (first.status, first.automation_rule) == (TransactionStatus.AUTHORIZED, "hold_before_visit")
    assert SandboxPaymentIntent.objects.get().idempotency_key == "k-1"


# -- the same outcomes, as signed events through the webhook -------------------------------------------


def test_every_outcome_arrives_as_a_signed_event_and_converges(
    organization, manager, location, card, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        held = _hold(organization, manager, card, location)
        released_hold = _hold(organization, manager, card, location)
    with django_capture_on_commit_callbacks(execute=True):
        authorization_capture(organization=organization, actor=manager, transaction=held)
        authorization_release(organization=organization, actor=manager, transaction=released_hold, reason="Cancelled")

    events = GatewayEvent.objects.filter(gateway="sandbox").order_by("id")
    assert [event.event_type for event in events] == ["charge.authorized", "charge.authorized", "charge.captured", "charge.released"]
    assert {event.status for event in events} == {GatewayEventStatus.PROCESSED}
    held.refresh_from_db()
    released_hold.refresh_from_db()
    # each fact once in the ledger, whichever of the service and the event recorded it first
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert _ledger(released_hold) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.AUTHORIZATION_RELEASED, 3000)]


def test_a_lapse_reported_only_by_the_event_releases_the_hold_in_the_ledger(
    organization, manager, location, card, django_capture_on_commit_callbacks
):
    held = _hold(organization, manager, card, location)
    processor.hold_age(held.gateway_checkout_id, by=timedelta(days=7, hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert processor.holds_lapse() == 1

    held.refresh_from_db()
    assert held.status == TransactionStatus.RELEASED
    assert GatewayEvent.objects.get(event_type="charge.released").payload["data"]["object"]["cancellation_reason"] == "expired"


def test_staff_pages_charge_and_capture_on_a_sandbox_clinic(client, organization, manager, location, card):
    appointment = AppointmentFactory(patient=card.patient, organization=organization, location=location, copay_cents=2000)
    client.force_login(manager)
    profile = text(client.get(reverse("patients:profile", args=[card.patient_id])))
    assert "Cards on file" in profile and "Charge this card" in profile

    response = client.post(reverse("transactions:saved_card_hold", args=[card.pk]), {"appointment": appointment.pk})
    held = Transaction.objects.get(appointment=appointment)
    assert response.status_code == 302 and held.status == TransactionStatus.AUTHORIZED
    client.post(reverse("transactions:transaction_capture", args=[held.pk]))
    held.refresh_from_db()
    assert (held.status, held.charged_cents) == (TransactionStatus.SUCCEEDED, 2000)
