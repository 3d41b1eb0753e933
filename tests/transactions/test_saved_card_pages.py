"""The pages for cards on file, through Django's test client against localstripe: the patient saves
a card from the confirmation page (with consent) and removes it through the link; staff charge it,
hold a copay and capture or release it, and remove it. The same pages on a Sandbox clinic:
tests/transactions/test_sandbox_saved_cards.py."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestKind, SavedCardStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import SavedCard, Transaction, TransactionEvent
from transactions.services.saved_cards import saved_card_charge

from ..factories import AppointmentFactory, MembershipFactory, PatientFactory
from ..stripe_support import stripe_clinic
from .pay_support import pay_url, payment_request_make, text, verified

pytestmark = pytest.mark.django_db

PATIENT_ADDRESS = "203.0.113.9"
CONSENT = (
    "I authorize Riverside Family Medicine to keep this card on file with its payment processor and to charge it for "
    "my copays and balances, including holding a copay before a visit and charging it at check-in. I can remove "
    "the card at any time from a payment link or by asking the clinic."
)


def _paid(client, stripe_world, organization, patient):
    """The patient opened their link, confirmed their date of birth and paid through Checkout."""
    payment_request = payment_request_make(organization=organization, patient=patient, amount_cents=4500)
    verified(client, payment_request)
    client.post(pay_url("checkout", payment_request))
    transaction = Transaction.objects.get(payment_request=payment_request)
    stripe_world.checkout.pay(transaction.gateway_checkout_id)
    assert client.get(pay_url("done", payment_request)).status_code == 200  # records the payment
    return payment_request


def _save_card(client, stripe_world, payment_request):
    """Tick the box, enter the card on Stripe's page, come back."""
    response = client.post(
        pay_url("card_save", payment_request), {"consent": "yes", "consent_text": CONSENT}, REMOTE_ADDR=PATIENT_ADDRESS
    )
    assert response.status_code == 302, text(response)[:500]
    card = SavedCard.objects.get(patient=payment_request.patient, status=SavedCardStatus.PENDING)
    stripe_world.checkout.save_card(card.gateway_setup_id)
    back = client.get(pay_url("card_saved", payment_request))
    assert back.status_code == 200
    card.refresh_from_db()
    return card, back


@pytest.fixture
def saved_card(client, stripe_world, stripe_organization, patient):
    payment_request = _paid(client, stripe_world, stripe_organization, patient)
    card, _back = _save_card(client, stripe_world, payment_request)
    client.logout()
    return card


def _ledger(transaction):
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "amount_cents"))


def _card_state(card):
    card.refresh_from_db()
    return (card.status, card.removed_at, card.removed_by_id)


# -- the patient ------------------------------------------------------------------------------------


def test_the_patient_saves_a_card_from_the_confirmation_page_with_consent(client, stripe_world, stripe_organization, patient):
    payment_request = _paid(client, stripe_world, stripe_organization, patient)

    confirmation = text(client.get(pay_url("done", payment_request)))
    assert "Payment received" in confirmation and "Save this card for future visits" in confirmation
    assert CONSENT in confirmation
    assert 'name="consent" value="yes"' in confirmation

    before = timezone.now()
    to_stripe = client.post(
        pay_url("card_save", payment_request), {"consent": "yes", "consent_text": CONSENT}, REMOTE_ADDR=PATIENT_ADDRESS
    )
    after = timezone.now()

    card = SavedCard.objects.get()
    assert to_stripe.status_code == 302
    assert to_stripe["Location"] == stripe_world.checkout.sessions[card.gateway_setup_id]["url"]
    (session,) = stripe_world.http.sent("POST", "/v1/checkout/sessions")[1:]  # the first one was the payment
    assert session.params["mode"] == "setup"
    assert session.params["success_url"] == "http://testserver" + pay_url("card_saved", payment_request)
    assert session.params["cancel_url"] == "http://testserver" + pay_url("done", payment_request)
    assert (card.status, card.patient, card.consent_text, card.consent_ip_address) == (
        SavedCardStatus.PENDING, patient, CONSENT, PATIENT_ADDRESS
    )
    assert before <= card.consented_at <= after
    consent = AuditEvent.objects.get(action="saved_card.consented")
    assert (consent.actor_type, consent.ip_address, consent.changes) == (
        "patient", PATIENT_ADDRESS, {"saved_card": card.pk, "consent_text": CONSENT}
    )

    # Back from Stripe before the card was entered: still waiting.
    waiting = client.get(pay_url("card_saved", payment_request))
    assert "Confirming your card" in text(waiting)
    stripe_world.checkout.save_card(card.gateway_setup_id)
    back = client.get(pay_url("card_saved", payment_request))

    card.refresh_from_db()
    assert (card.status, card.card_brand, card.card_last4, card.exp_month, card.exp_year) == (
        SavedCardStatus.ACTIVE, "visa", "4242", 12, 2034
    )
    assert "Riverside Family Medicine keeps your Visa card ending in 4242 on file for future visits." in text(back)
    assert AuditEvent.objects.filter(action="saved_card.saved").count() == 1
    assert "Visa •••• 4242 · expires 12/2034" in text(client.get(pay_url("done", payment_request)))


def test_without_ticking_the_box_nothing_is_started(client, stripe_world, stripe_organization, patient):
    payment_request = _paid(client, stripe_world, stripe_organization, patient)
    sent_before = len(stripe_world.http.recorded)

    response = client.post(pay_url("card_save", payment_request), {"consent_text": CONSENT}, REMOTE_ADDR=PATIENT_ADDRESS)

    assert response.status_code == 400
    assert "Tick the box to agree before your card is kept on file." in text(response)
    assert SavedCard.objects.count() == 0
    assert AuditEvent.objects.filter(action__startswith="saved_card.").count() == 0
    assert stripe_world.http.sent("POST", "/v1/customers") == []
    assert len(stripe_world.http.recorded) == sent_before


def test_a_spanish_speaking_patient_gets_the_offer_in_spanish(client, stripe_world, stripe_organization):
    patient = PatientFactory(organization=stripe_organization, preferred_language="es")
    payment_request = _paid(client, stripe_world, stripe_organization, patient)

    page = text(client.get(pay_url("done", payment_request)))

    assert "Guardar esta tarjeta para futuras visitas" in page
    assert "Acepto mantener mi tarjeta registrada." in page


def test_the_patient_removes_their_card_through_the_link_once_verified(client, stripe_world, stripe_organization, saved_card):
    payment_request = payment_request_make(organization=stripe_organization, patient=saved_card.patient)
    other_patients_card = SavedCard.objects.create(
        organization=stripe_organization, patient=PatientFactory(organization=stripe_organization), vendor="stripe",
        status=SavedCardStatus.ACTIVE, gateway_customer_id="cus_other", gateway_payment_method_id="pm_other",
        card_brand="mastercard", card_last4="4444", consent_text=CONSENT, consented_at=timezone.now(),
    )

    # Without the date-of-birth check in this session: nothing happens.
    unverified = client.post(pay_url("card_remove", payment_request), {"card": saved_card.pk})
    assert (unverified.status_code, unverified["Location"]) == (302, pay_url("verify", payment_request))
    assert _card_state(saved_card) == (SavedCardStatus.ACTIVE, None, None)

    verified(client, payment_request)
    assert "Visa •••• 4242" in text(client.get(pay_url("details", payment_request)))
    # Another patient's card is not found through this link.
    assert client.post(pay_url("card_remove", payment_request), {"card": other_patients_card.pk}).status_code == 404
    assert _card_state(other_patients_card) == (SavedCardStatus.ACTIVE, None, None)

    response = client.post(pay_url("card_remove", payment_request), {"card": saved_card.pk}, REMOTE_ADDR=PATIENT_ADDRESS)

    assert response.status_code == 200
    assert "Your Visa card ending in 4242 is no longer on file." in text(response)
    status, removed_at, removed_by = _card_state(saved_card)
    assert (status, removed_at is not None, removed_by) == (SavedCardStatus.REMOVED, True, None)
    audit = AuditEvent.objects.get(action="saved_card.removed")
    assert (audit.actor_type, audit.ip_address, audit.changes) == (
        "patient", PATIENT_ADDRESS, {"saved_card": saved_card.pk, "card": "Visa ···· 4242"}
    )
    assert stripe_world.server.call("GET", f"/v1/payment_methods/{saved_card.gateway_payment_method_id}")["customer"] is None
    assert "Visa •••• 4242" not in text(client.get(pay_url("details", payment_request)))


# -- staff ------------------------------------------------------------------------------------------


def test_the_card_appears_on_the_patients_profile(client, stripe_organization, manager, saved_card):
    client.force_login(manager)

    page = text(client.get(reverse("patients:profile", args=[saved_card.patient_id])))

    assert "Cards on file" in page
    assert "Visa ···· 4242" in page
    assert "12/2034" in page
    assert f"Given {timezone.localtime(saved_card.consented_at):%b} " in page and f"from {PATIENT_ADDRESS}" in page
    for action in ("Charge this card", "Hold a copay for an appointment", "Remove card"):
        assert action in page


def test_staff_charge_the_card_from_the_profile(client, stripe_world, stripe_organization, manager, location, saved_card):
    client.force_login(manager)

    response = client.post(
        reverse("transactions:saved_card_charge", args=[saved_card.pk]),
        {"amount": "25.00", "billing_item": "Balance after insurance", "kind": PaymentRequestKind.BALANCE, "location": location.pk},
    )

    transaction = Transaction.objects.get(saved_card=saved_card)
    assert (response.status_code, response["Location"]) == (302, reverse("transactions:transaction_detail", args=[transaction.pk]))
    assert (transaction.status, transaction.amount_cents, transaction.charged_cents, transaction.kind, transaction.billing_item) == (
        TransactionStatus.SUCCEEDED, 2500, 2500, PaymentRequestKind.BALANCE, "Balance after insurance"
    )
    assert (transaction.location, transaction.patient, transaction.card_last4) == (location, saved_card.patient, "4242")
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 2500), (Kind.CHARGE_SUCCEEDED, 2500)]
    audit = AuditEvent.objects.get(action="saved_card.charge_requested")
    assert (audit.actor_user, audit.transaction, audit.changes) == (manager, transaction, {"saved_card": saved_card.pk, "amount_cents": 2500})
    (intent,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert (intent.params["amount"], intent.params["off_session"], intent.params["capture_method"]) == ("2500", "true", "automatic")
    assert "Charged $25.00 to the card on file." in text(client.get(response["Location"]))


def test_a_charge_form_with_a_bad_amount_charges_nothing(client, stripe_world, stripe_organization, manager, location, saved_card):
    client.force_login(manager)

    response = client.post(
        reverse("transactions:saved_card_charge", args=[saved_card.pk]),
        {"amount": "lots", "billing_item": "Balance", "kind": PaymentRequestKind.BALANCE, "location": location.pk},
        follow=True,
    )

    assert "“lots” is not an amount." in text(response)
    assert Transaction.objects.filter(saved_card=saved_card).count() == 0
    assert stripe_world.http.sent("POST", "/v1/payment_intents") == []


def test_a_copay_held_from_the_profile_is_captured_at_check_in(
    client, stripe_world, stripe_organization, staff_user, location, saved_card
):
    stripe_organization.saved_card_roles = ["administrator", "manager", "staff"]  # sub-account users too
    stripe_organization.save(update_fields=["saved_card_roles"])
    appointment = AppointmentFactory(patient=saved_card.patient, organization=stripe_organization, location=location, copay_cents=3000)
    client.force_login(staff_user)
    profile = text(client.get(reverse("patients:profile", args=[saved_card.patient_id])))
    assert f'<option value="{appointment.pk}">' in profile

    response = client.post(reverse("transactions:saved_card_hold", args=[saved_card.pk]), {"appointment": appointment.pk})

    held = Transaction.objects.get(saved_card=saved_card)
    assert response["Location"] == reverse("transactions:transaction_detail", args=[held.pk])
    assert (held.status, held.amount_cents, held.charged_cents, held.appointment, held.kind, held.location) == (
        TransactionStatus.AUTHORIZED, 3000, 0, appointment, PaymentRequestKind.COPAY, location
    )
    assert stripe_world.http.sent("POST", "/v1/payment_intents")[0].params["capture_method"] == "manual"
    detail = text(client.get(response["Location"]))
    assert "Held $30.00 on the card until check-in." in detail
    assert "Capture at check-in" in detail and "Release hold" in detail

    captured = client.post(reverse("transactions:transaction_capture", args=[held.pk]))

    held.refresh_from_db()
    assert captured["Location"] == reverse("transactions:transaction_detail", args=[held.pk])
    assert (held.status, held.charged_cents) == (TransactionStatus.SUCCEEDED, 3000)
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    audit = AuditEvent.objects.get(action="authorization.captured")
    assert (audit.actor_user, audit.changes) == (staff_user, {"amount_cents": 3000})
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "succeeded"
    after = text(client.get(captured["Location"]))
    assert "Captured $30.00." in after and "Capture at check-in" not in after

    # A second press finds nothing held and changes nothing.
    client.post(reverse("transactions:transaction_capture", args=[held.pk]))
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    assert AuditEvent.objects.filter(action="authorization.captured").count() == 1


def test_a_held_copay_is_released_with_a_reason(client, stripe_world, stripe_organization, manager, location, saved_card):
    appointment = AppointmentFactory(patient=saved_card.patient, organization=stripe_organization, location=location, copay_cents=3000)
    client.force_login(manager)
    client.post(reverse("transactions:saved_card_hold", args=[saved_card.pk]), {"appointment": appointment.pk})
    held = Transaction.objects.get(saved_card=saved_card)
    release_url = reverse("transactions:transaction_release", args=[held.pk])

    without_reason = client.post(release_url, {"reason": ""}, follow=True)
    held.refresh_from_db()
    assert "Say why the hold is released." in text(without_reason)
    assert held.status == TransactionStatus.AUTHORIZED
    assert AuditEvent.objects.filter(action="authorization.released").count() == 0

    released = client.post(release_url, {"reason": "Appointment cancelled"}, follow=True)

    held.refresh_from_db()
    assert "Released the hold of $30.00. Nothing was charged." in text(released)
    assert (held.status, held.charged_cents) == (TransactionStatus.RELEASED, 0)
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.AUTHORIZATION_RELEASED, 3000)]
    audit = AuditEvent.objects.get(action="authorization.released")
    assert (audit.actor_type, audit.actor_user, audit.changes) == (
        "staff", manager, {"amount_cents": 3000, "reason": "Appointment cancelled"}
    )
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "canceled"


def test_a_past_appointment_cannot_be_held(client, stripe_world, stripe_organization, manager, location, saved_card):
    past = AppointmentFactory(
        patient=saved_card.patient, organization=stripe_organization, location=location,
        starts_at=timezone.now() - datetime.timedelta(days=1),
    )
    client.force_login(manager)

    response = client.post(reverse("transactions:saved_card_hold", args=[saved_card.pk]), {"appointment": past.pk}, follow=True)

    assert "Choose one of this patient&#x27;s upcoming appointments with a copay." in text(response)
    assert Transaction.objects.filter(saved_card=saved_card).count() == 0
    assert stripe_world.http.sent("POST", "/v1/payment_intents") == []


def test_staff_remove_a_card_from_the_profile(client, stripe_world, stripe_organization, manager, saved_card):
    client.force_login(manager)

    response = client.post(reverse("transactions:saved_card_remove", args=[saved_card.pk]), follow=True)

    status, removed_at, removed_by = _card_state(saved_card)
    assert (status, removed_at is not None, removed_by) == (SavedCardStatus.REMOVED, True, manager.pk)
    page = text(response)
    assert "Removed Visa ···· 4242: it will not be charged again." in page
    assert "No card on file." in page
    audit = AuditEvent.objects.get(action="saved_card.removed")
    assert (audit.actor_type, audit.actor_user) == ("staff", manager)
    assert stripe_world.server.call("GET", f"/v1/payment_methods/{saved_card.gateway_payment_method_id}")["customer"] is None


def test_another_organization_gets_404_and_nothing_changes(
    client, stripe_world, stripe_organization, manager, location, other_organization, saved_card
):
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=saved_card, amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location, hold_only=True,
    )
    stripe_clinic(stripe_world, other_organization)
    client.force_login(MembershipFactory(organization=other_organization, role="administrator").user)
    intents_before = len(stripe_world.http.sent("POST", "/v1/payment_intents"))

    answers = [
        client.post(reverse("transactions:saved_card_charge", args=[saved_card.pk]), {"amount": "10", "billing_item": "x", "kind": "balance"}).status_code,
        client.post(reverse("transactions:saved_card_hold", args=[saved_card.pk]), {}).status_code,
        client.post(reverse("transactions:saved_card_remove", args=[saved_card.pk])).status_code,
        client.post(reverse("transactions:transaction_capture", args=[held.pk])).status_code,
        client.post(reverse("transactions:transaction_release", args=[held.pk]), {"reason": "x"}).status_code,
        client.get(reverse("patients:profile", args=[saved_card.patient_id])).status_code,
    ]

    assert answers == [404] * 6
    assert _card_state(saved_card) == (SavedCardStatus.ACTIVE, None, None)
    held.refresh_from_db()
    assert held.status == TransactionStatus.AUTHORIZED
    assert Transaction.objects.count() == 2  # the patient's payment and the hold
    assert len(stripe_world.http.sent("POST", "/v1/payment_intents")) == intents_before


def test_the_staff_pages_are_get_free(client, stripe_organization, manager, saved_card):
    client.force_login(manager)

    for name in ("saved_card_charge", "saved_card_hold", "saved_card_remove"):
        assert client.get(reverse(f"transactions:{name}", args=[saved_card.pk])).status_code == 405
    assert _card_state(saved_card) == (SavedCardStatus.ACTIVE, None, None)
