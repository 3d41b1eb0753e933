"""Cards on file against localstripe: saved with the patient's consent (Checkout in setup mode is
answered from Stripe's example object; the SetupIntent behind it is real), charged off-session by
staff, held before a visit and captured at check-in or released, and removed."""

import pytest

from ehr_sync.enums import AppointmentStatus
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestKind, SavedCardStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.stripe.client import idempotency_key
from transactions.models import SavedCard, TransactionEvent
from transactions.services.refunds import refund_create
from transactions.tasks import authorizations_release_for_missed_visits
from transactions.services.saved_cards import (
    authorization_capture,
    authorization_release,
    card_on_file_consent_text,
    saved_card_charge,
    saved_card_remove,
    saved_card_setup_begin,
    saved_card_setup_complete,
)

from ..factories import AppointmentFactory, LocationFactory, MembershipFactory
from ..stripe_support import CARD_DECLINED_AT_CHARGE, LocalStripeError, event_receive, stripe_event
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


def _begin(organization, payment_request, **overrides):
    arguments = {
        "payment_request": payment_request,
        "consent_given": True,
        "consent_text": card_on_file_consent_text(organization),
        "ip_address": "203.0.113.9",
        "success_url": "http://testserver/pay/t/card-saved/",
        "cancel_url": "http://testserver/pay/t/details/",
        **overrides,
    }
    return saved_card_setup_begin(**arguments)


@pytest.fixture
def saved(stripe_world, stripe_organization, patient):
    """saved(card_number) → the patient's card on file, saved through the pay page."""

    def save(card_number="4242424242424242"):
        start = _begin(stripe_organization, payment_request_make(organization=stripe_organization, patient=patient))
        stripe_world.checkout.save_card(start.checkout_id, card_number=card_number)
        return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))

    return save


def _cards_for_everyone(organization):
    """Let sub-account users use cards on file too (the default is managers and administrators)."""
    organization.saved_card_roles = ["administrator", "manager", "staff"]
    organization.save(update_fields=["saved_card_roles"])


def _ledger(transaction):
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "amount_cents"))


def test_saving_a_card_records_the_consent_and_keeps_only_the_cards_ids(stripe_world, stripe_organization, patient):
    payment_request = payment_request_make(organization=stripe_organization, patient=patient)

    start = _begin(stripe_organization, payment_request)

    card = SavedCard.objects.get()
    (customer,) = stripe_world.http.sent("POST", "/v1/customers")
    (session,) = stripe_world.http.sent("POST", "/v1/checkout/sessions")
    assert customer.params == {"metadata": {"lumapay_organization_id": str(stripe_organization.pk)}}
    assert customer.account == session.account == stripe_organization.stripe_account_id
    assert session.params["mode"] == "setup"
    assert session.params["customer"] == card.gateway_customer_id
    assert session.params["setup_intent_data"] == {
        "metadata": {"lumapay_saved_card_id": str(card.pk), "lumapay_organization_id": str(stripe_organization.pk)}
    }
    assert (card.status, card.gateway_setup_id, card.patient) == (SavedCardStatus.PENDING, start.checkout_id, patient)
    assert card.consent_text == (
        "I authorize Riverside Family Medicine to keep this card on file with its payment processor and to charge it for "
        "my copays and balances, including holding a copay before a visit and charging it at check-in. I can remove "
        "the card at any time from a payment link or by asking the clinic."
    )
    assert (card.consent_ip_address, card.consented_at is not None) == ("203.0.113.9", True)
    consent = AuditEvent.objects.get(action="saved_card.consented")
    assert (consent.actor_type, consent.ip_address, consent.changes["consent_text"]) == ("patient", "203.0.113.9", card.consent_text)

    assert saved_card_setup_complete(saved_card=card).status == SavedCardStatus.PENDING  # not entered yet
    stripe_world.checkout.save_card(start.checkout_id)
    card = saved_card_setup_complete(saved_card=card)

    assert (card.status, card.card_brand, card.card_last4, card.exp_month, card.exp_year) == (
        SavedCardStatus.ACTIVE, "visa", "4242", 12, 2034
    )
    assert card.gateway_payment_method_id.startswith("pm_")
    assert AuditEvent.objects.filter(action="saved_card.saved").count() == 1
    saved_card_setup_complete(saved_card=card)
    assert AuditEvent.objects.filter(action="saved_card.saved").count() == 1


@pytest.mark.parametrize("problem", ["no consent", "other text"])
def test_without_the_patients_consent_nothing_is_saved_or_sent(stripe_world, stripe_organization, patient, problem):
    payment_request = payment_request_make(organization=stripe_organization, patient=patient)
    overrides = {"consent_given": False} if problem == "no consent" else {"consent_text": "I agree."}

    with pytest.raises(ApplicationError, match="Tick the box to agree"):
        _begin(stripe_organization, payment_request, **overrides)

    assert SavedCard.objects.count() == 0
    assert stripe_world.http.recorded == []


def test_a_second_card_goes_under_the_same_customer_and_a_declined_one_is_not_kept(stripe_world, stripe_organization, saved):
    first = saved()
    with pytest.raises(LocalStripeError):
        saved("4000000000000002")  # declined when Stripe tries to attach it

    second = SavedCard.objects.exclude(pk=first.pk).get()
    assert second.gateway_customer_id == first.gateway_customer_id
    assert saved_card_setup_complete(saved_card=second).status == SavedCardStatus.PENDING
    assert len(stripe_world.http.sent("POST", "/v1/customers")) == 1


def test_staff_charge_a_card_on_file_off_session(stripe_world, stripe_organization, manager, location, saved):
    card = saved()

    transaction = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=2500,
        kind=PaymentRequestKind.BALANCE, billing_item="Balance after insurance", location=location,
    )

    (create,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert create.params == {
        "amount": "2500",
        "currency": "usd",
        "customer": card.gateway_customer_id,
        "payment_method": card.gateway_payment_method_id,
        "off_session": "true",
        "confirm": "true",
        "capture_method": "automatic",
        "metadata": {"lumapay_transaction_id": str(transaction.pk), "lumapay_organization_id": str(stripe_organization.pk)},
    }
    assert create.headers["Idempotency-Key"] == idempotency_key(row="transaction", pk=transaction.pk, action="charge")
    assert create.account == stripe_organization.stripe_account_id
    assert (transaction.status, transaction.charged_cents, transaction.saved_card, transaction.card_last4) == (
        TransactionStatus.SUCCEEDED, 2500, card, "4242"
    )
    assert transaction.gateway_checkout_id == transaction.gateway_charge_id == create_pi(stripe_world)
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 2500), (Kind.CHARGE_SUCCEEDED, 2500)]
    # A card-on-file payment refunds like any other.
    refund = refund_create(organization=stripe_organization, actor=manager, transaction=transaction, amount_cents=500, reason="Overbilled")
    assert refund.status == "succeeded"


def create_pi(stripe_world) -> str:
    intents = stripe_world.server.call("GET", "/v1/payment_intents")["data"]
    assert len(intents) == 1
    return intents[0]["id"]


def test_a_card_declined_off_session_is_a_failed_transaction_and_its_event_converges(
    stripe_world, stripe_organization, manager, location, saved, django_capture_on_commit_callbacks
):
    card = saved(CARD_DECLINED_AT_CHARGE)

    transaction = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=2500,
        kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=location,
    )

    assert (transaction.status, transaction.charged_cents, transaction.last_error) == (
        TransactionStatus.FAILED, 0, "Your card was declined."
    )
    intent = stripe_world.server.call("GET", f"/v1/payment_intents/{create_pi(stripe_world)}")
    intent["latest_charge"] = intent["latest_charge"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("payment_intent.payment_failed", intent, account=stripe_organization.stripe_account_id))
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 2500), (Kind.CHARGE_FAILED, 0)]


def test_a_copay_held_before_the_visit_is_captured_at_check_in(
    stripe_world, stripe_organization, manager, staff_user, location, saved, django_capture_on_commit_callbacks
):
    _cards_for_everyone(stripe_organization)
    card = saved()
    appointment = AppointmentFactory(patient=card.patient, organization=stripe_organization, location=location)

    held = saved_card_charge(
        organization=stripe_organization, actor=staff_user, saved_card=card, amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location,
        appointment=appointment, hold_only=True,
    )

    assert (held.status, held.charged_cents) == (TransactionStatus.AUTHORIZED, 0)
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "requires_capture"
    assert stripe_world.http.sent("POST", "/v1/payment_intents")[0].params["capture_method"] == "manual"
    with pytest.raises(ApplicationError):  # nothing was charged yet, so nothing to refund
        refund_create(organization=stripe_organization, actor=manager, transaction=held, amount_cents=100, reason="x")
    intent = stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")
    intent["latest_charge"] = intent["latest_charge"]["id"]
    with django_capture_on_commit_callbacks(execute=True):  # Stripe's own report of the hold changes nothing more
        event_receive(stripe_event("payment_intent.amount_capturable_updated", intent, account=stripe_organization.stripe_account_id))

    captured = authorization_capture(organization=stripe_organization, actor=staff_user, transaction=held)

    assert (captured.status, captured.charged_cents, captured.gateway_charge_id) == (
        TransactionStatus.SUCCEEDED, 3000, held.gateway_checkout_id
    )
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "succeeded"
    assert _ledger(captured) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.CHARGE_SUCCEEDED, 3000)]
    with pytest.raises(ApplicationError, match="there is no held amount"):
        authorization_capture(organization=stripe_organization, actor=staff_user, transaction=captured)
    assert AuditEvent.objects.filter(action="authorization.captured").count() == 1


def test_a_hold_is_released_when_the_visit_is_cancelled(stripe_world, stripe_organization, manager, location, saved):
    # given a copay held on the card for an appointment, and another held for a visit still booked
    card = saved()
    appointment = AppointmentFactory(patient=card.patient, organization=stripe_organization, location=location)
    booked = AppointmentFactory(patient=card.patient, organization=stripe_organization, location=location)
    held, still_held = (
        saved_card_charge(
            organization=stripe_organization, actor=manager, saved_card=card, amount_cents=3000,
            kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location,
            appointment=visit, hold_only=True,
        )
        for visit in (appointment, booked)
    )
    # and the EHR sync has since recorded the first appointment as cancelled
    appointment.status = AppointmentStatus.CANCELLED
    appointment.save(update_fields=["status"])

    # when the beat task runs
    assert authorizations_release_for_missed_visits.delay().get() == 1

    # then that hold is let go at Stripe and in the ledger, by the system, and the other is kept
    held.refresh_from_db()
    still_held.refresh_from_db()
    assert (held.status, held.charged_cents) == (TransactionStatus.RELEASED, 0)
    assert still_held.status == TransactionStatus.AUTHORIZED
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "canceled"
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.AUTHORIZATION_RELEASED, 3000)]
    released = AuditEvent.objects.get(action="authorization.released")
    assert (released.actor_type, released.transaction, released.changes["reason"], released.changes["rule"]) == (
        "system", held, "Appointment cancelled", "release_missed_visit"
    )
    with pytest.raises(ApplicationError):
        authorization_capture(organization=stripe_organization, actor=manager, transaction=held)
    # and a second run finds nothing left to release
    assert authorizations_release_for_missed_visits.delay().get() == 0
    assert AuditEvent.objects.filter(action="authorization.released").count() == 1


def test_a_hold_is_released_when_the_patient_did_not_come(stripe_world, stripe_organization, manager, location, saved):
    # given a copay held for an appointment the EHR then reports as a no-show
    card = saved()
    appointment = AppointmentFactory(patient=card.patient, organization=stripe_organization, location=location)
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=2500,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location,
        appointment=appointment, hold_only=True,
    )
    appointment.status = AppointmentStatus.NO_SHOW
    appointment.save(update_fields=["status"])

    # when the beat task runs
    released_count = authorizations_release_for_missed_visits.delay().get()

    # then the hold is released, with the reason on record
    held.refresh_from_db()
    assert (released_count, held.status) == (1, TransactionStatus.RELEASED)
    assert AuditEvent.objects.get(action="authorization.released").changes == {
        "amount_cents": 2500, "reason": "Patient did not come (no-show)", "rule": "release_missed_visit"
    }


def test_a_hold_released_by_staff(stripe_world, stripe_organization, manager, location, saved):
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=saved(), amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location, hold_only=True,
    )

    released = authorization_release(organization=stripe_organization, actor=manager, transaction=held, reason="Patient did not come")

    assert released.status == TransactionStatus.RELEASED
    assert AuditEvent.objects.get(action="authorization.released").actor_user == manager


@pytest.mark.parametrize("by", ["patient", "staff"])
def test_a_removed_card_is_forgotten_by_stripe_and_never_charged_again(
    stripe_world, stripe_organization, manager, location, saved, by
):
    card = saved()
    actor = manager if by == "staff" else None

    removed = saved_card_remove(saved_card=card, actor=actor, ip_address="203.0.113.9")

    assert (removed.status, removed.removed_by, removed.removed_at is not None) == (SavedCardStatus.REMOVED, actor, True)
    assert stripe_world.server.call("GET", f"/v1/payment_methods/{card.gateway_payment_method_id}")["customer"] is None
    audit = AuditEvent.objects.get(action="saved_card.removed")
    assert audit.actor_type == ("staff" if actor else "patient")
    with pytest.raises(ApplicationError, match="This card is not on file"):
        saved_card_charge(
            organization=stripe_organization, actor=manager, saved_card=removed, amount_cents=100,
            kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=location,
        )
    saved_card_remove(saved_card=removed, actor=actor)
    assert AuditEvent.objects.filter(action="saved_card.removed").count() == 1
    assert stripe_world.http.sent("POST", "/v1/payment_intents") == []


def test_staff_charge_only_for_their_own_locations_and_own_organization(
    stripe_world, stripe_organization, staff_user, other_organization, saved
):
    _cards_for_everyone(stripe_organization)
    card = saved()
    elsewhere = LocationFactory(organization=stripe_organization, name="Northside Clinic")
    outsider = MembershipFactory(organization=other_organization).user

    with pytest.raises(ApplicationError, match="only for your own locations"):
        saved_card_charge(
            organization=stripe_organization, actor=staff_user, saved_card=card, amount_cents=100,
            kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=elsewhere,
        )
    with pytest.raises(ApplicationError, match="only administrators, managers and sub-account users can charge"):
        saved_card_charge(
            organization=stripe_organization, actor=outsider, saved_card=card, amount_cents=100,
            kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=elsewhere,
        )
    assert stripe_world.http.sent("POST", "/v1/payment_intents") == []


def test_a_hold_whose_release_and_hold_events_arrive_out_of_order_ends_released(
    stripe_world, stripe_organization, manager, location, saved, django_capture_on_commit_callbacks
):
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=saved(), amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location, hold_only=True,
    )
    hold_event = stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")
    stripe_world.server.call("POST", f"/v1/payment_intents/{held.gateway_checkout_id}/cancel")  # expired at Stripe
    canceled = stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")
    for intent in (hold_event, canceled):
        intent["latest_charge"] = intent["latest_charge"]["id"]

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(stripe_event("payment_intent.canceled", canceled, account=stripe_organization.stripe_account_id))
        event_receive(stripe_event("payment_intent.amount_capturable_updated", hold_event, account=stripe_organization.stripe_account_id))

    held.refresh_from_db()
    assert held.status == TransactionStatus.RELEASED
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, 3000), (Kind.CHARGE_AUTHORIZED, 3000), (Kind.AUTHORIZATION_RELEASED, 3000)]


def test_the_consent_is_worded_in_the_language_the_patient_reads(organization):
    from django.utils import translation

    with translation.override("es"):
        spanish = card_on_file_consent_text(organization)
    english = card_on_file_consent_text(organization)

    assert spanish.startswith(f"Autorizo a {organization.display_name} a guardar esta tarjeta")
    assert english.startswith(f"I authorize {organization.display_name} to keep this card on file")


def test_staff_capture_or_release_holds_only_at_their_own_locations(
    stripe_world, stripe_organization, manager, staff_user, saved
):
    # given a copay held at the Northside Clinic, and a sub-account user of the Downtown Clinic
    _cards_for_everyone(stripe_organization)
    elsewhere = LocationFactory(organization=stripe_organization, name="Northside Clinic")
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=saved(), amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=elsewhere, hold_only=True,
    )
    ledger = _ledger(held)

    # when they capture it, or release it
    with pytest.raises(ApplicationError, match="You can capture or release holds only at your own locations."):
        authorization_capture(organization=stripe_organization, actor=staff_user, transaction=held)
    with pytest.raises(ApplicationError, match="You can capture or release holds only at your own locations."):
        authorization_release(organization=stripe_organization, actor=staff_user, transaction=held, reason="No-show")

    # then the amount is still held, at Stripe and in the ledger
    held.refresh_from_db()
    assert (held.status, _ledger(held)) == (TransactionStatus.AUTHORIZED, ledger)
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "requires_capture"
    assert not AuditEvent.objects.filter(action__in=["authorization.captured", "authorization.released"]).exists()
    refusals = AuditEvent.objects.filter(action="saved_card.refused").order_by("id")
    assert [(audit.actor_user, audit.changes) for audit in refusals] == [
        (staff_user, {"attempted": "capture", "reason": "location", "amount_cents": 3000}),
        (staff_user, {"attempted": "release", "reason": "location", "amount_cents": 3000}),
    ]
