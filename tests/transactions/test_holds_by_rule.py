"""Holds by rule on the Sandbox: copays held before visits (and which appointments are the hold
rule's rather than the copay request's), captured at check-in by the beat sweep or by staff,
released for missed visits, renewed before they lapse, all recorded as LumaPay with the rule."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from lumapay.models import AuditEvent
from transactions.enums import CollectionRule, PaymentRequestStatus, SavedCardStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.models import SavedCard, Transaction, TransactionEvent
from transactions.sandbox import processor
from transactions.sandbox.models import SandboxPaymentIntent, SandboxPaymentMethod
from transactions.selectors.holds import appointment_left_to_hold_rule, appointments_left_to_hold_rule
from transactions.selectors.ledger import transaction_timeline
from transactions.services.holds import holds_renew
from transactions.services.saved_cards import saved_card_remove
from transactions.tasks import (
    authorizations_release_for_missed_visits,
    holds_capture_at_check_in,
    holds_place_before_visits,
)

from ..factories import LocationFactory, MembershipFactory, PatientFactory
from .holds_support import DECLINED_WHEN_CHARGED, hold_rule_on, sandbox_card, visit
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def card(organization, patient):
    hold_rule_on(organization)
    return sandbox_card(organization, patient)


def _holds(appointment):
    return list(Transaction.objects.filter(appointment=appointment).order_by("pk"))


def _ledger(transaction):
    return list(TransactionEvent.objects.filter(transaction=transaction).order_by("id").values_list("kind", "actor_type"))


# -- holding before the visit ---------------------------------------------------------------------------


def test_the_copay_is_held_before_the_visit_by_lumapay_with_the_rule(organization, location, card):
    appointment = visit(card, location, in_hours=10, copay_cents=3000)

    assert holds_place_before_visits.delay().get() == 1

    (held,) = _holds(appointment)
    assert (held.status, held.amount_cents, held.automation_rule, held.saved_card, held.location) == (
        TransactionStatus.AUTHORIZED, 3000, CollectionRule.HOLD_BEFORE_VISIT, card, location
    )
    assert SandboxPaymentIntent.objects.get(client_reference=str(held.pk)).status == "requires_capture"
    assert _ledger(held) == [(Kind.CHARGE_REQUESTED, "system"), (Kind.CHARGE_AUTHORIZED, "gateway")]
    audit = AuditEvent.objects.get(action="saved_card.hold_requested")
    assert (audit.actor_type, audit.changes["rule"]) == ("system", "hold_before_visit")
    timeline = transaction_timeline(transaction=held)
    assert [(entry.title, entry.actor) for entry in timeline if entry.source == "audit"] == [
        ("Amount held on the card on file", "LumaPay")
    ]
    assert "By the rule: Copay held on the card on file before the visit." in [entry.detail for entry in timeline]
    # and the next passes leave it be
    assert holds_place_before_visits.delay().get() == 0
    assert len(_holds(appointment)) == 1


def test_only_appointments_due_and_left_to_the_hold_rule_are_held(organization, location, card, patient):
    due = visit(card, location, in_hours=20)
    later = visit(card, location, in_hours=30)  # outside the 24 hours
    started = visit(card, location, in_hours=-1)
    no_copay = visit(card, location, copay_cents=0)
    cancelled = visit(card, location, status=AppointmentStatus.CANCELLED)
    paid = visit(card, location)
    request = payment_request_make(organization=organization, patient=patient)
    request.status, request.appointment = PaymentRequestStatus.PAID, paid
    request.save(update_fields=["status", "appointment"])
    asked = visit(card, location)  # staff sent a request the patient may still pay
    open_request = payment_request_make(organization=organization, patient=patient)
    open_request.appointment = asked
    open_request.save(update_fields=["appointment"])
    over_limit = visit(card, location, copay_cents=organization.saved_card_charge_max_cents + 1)
    no_card = visit(sandbox_card(organization, PatientFactory(organization=organization)), location)
    SavedCard.objects.filter(patient=no_card.patient).update(status=SavedCardStatus.REMOVED)
    other_words = visit(sandbox_card(organization, PatientFactory(organization=organization)), location)
    SavedCard.objects.filter(patient=other_words.patient).update(consent_text="I agree to be charged for balances.")

    assert holds_place_before_visits.delay().get() == 1

    assert list(Transaction.objects.filter(automation_rule__isnull=False).exclude(automation_rule="").values_list("appointment", flat=True)) == [due.pk]
    left = set(appointments_left_to_hold_rule(organization=organization).values_list("pk", flat=True))
    # the window, the status and whether it is paid are the passes' business; the contract is the card
    assert {due.pk, later.pk, started.pk, no_copay.pk, cancelled.pk, paid.pk, asked.pk} <= left
    assert not left & {over_limit.pk, no_card.pk, other_words.pk}


def test_nothing_is_held_while_the_rule_is_off(organization, location, card):
    appointment = visit(card, location)
    hold_rule_on(organization).__class__.objects.filter(organization=organization).update(hold_enabled=False)

    assert holds_place_before_visits.delay().get() == 0
    assert _holds(appointment) == []
    assert not appointment_left_to_hold_rule(appointment)


def test_a_declined_hold_is_a_failed_transaction_and_leaves_the_copay_to_a_request(organization, location, patient):
    hold_rule_on(organization)
    card = sandbox_card(organization, patient, DECLINED_WHEN_CHARGED)
    appointment = visit(card, location)
    assert appointment_left_to_hold_rule(appointment)

    assert holds_place_before_visits.delay().get() == 1

    (failed,) = _holds(appointment)
    assert (failed.status, failed.automation_rule, failed.last_error) == (
        TransactionStatus.FAILED, CollectionRule.HOLD_BEFORE_VISIT, "Your card was declined."
    )
    assert not appointment_left_to_hold_rule(appointment)
    # never tried again: the copay request takes over
    assert holds_place_before_visits.delay().get() == 0
    assert len(_holds(appointment)) == 1


# -- capture at check-in -----------------------------------------------------------------------------------


def test_the_held_copay_is_captured_when_the_ehr_says_the_patient_arrived(organization, location, card):
    appointment, not_yet = visit(card, location), visit(card, location, in_hours=12)
    holds_place_before_visits.delay().get()
    assert holds_capture_at_check_in.delay().get() == 0

    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.ARRIVED)
    assert holds_capture_at_check_in.delay().get() == 1

    (captured,) = _holds(appointment)
    assert (captured.status, captured.charged_cents) == (TransactionStatus.SUCCEEDED, 3000)
    audit = AuditEvent.objects.get(action="authorization.captured")
    assert (audit.actor_type, audit.changes["rule"], audit.transaction) == ("system", "capture_at_check_in", captured)
    assert _holds(not_yet)[0].status == TransactionStatus.AUTHORIZED
    Appointment.objects.filter(pk=not_yet.pk).update(status=AppointmentStatus.FULFILLED)
    assert holds_capture_at_check_in.delay().get() == 1
    assert holds_capture_at_check_in.delay().get() == 0
    assert AuditEvent.objects.filter(action="authorization.captured").count() == 2


def test_staff_check_the_patient_in_from_the_profile_and_the_copay_is_captured(client, organization, manager, location, card):
    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    client.force_login(manager)
    profile = client.get(reverse("patients:profile", args=[card.patient_id])).content.decode()
    assert reverse("transactions:appointment_check_in", args=[appointment.pk]) in profile

    response = client.post(reverse("transactions:appointment_check_in", args=[appointment.pk]))

    (captured,) = _holds(appointment)
    assert response.status_code == 302 and response["Location"] == reverse("transactions:transaction_detail", args=[captured.pk])
    appointment.refresh_from_db()
    assert (appointment.status, captured.status, captured.charged_cents) == (AppointmentStatus.ARRIVED, TransactionStatus.SUCCEEDED, 3000)
    checked_in = AuditEvent.objects.get(action="appointment.checked_in")
    captured_audit = AuditEvent.objects.get(action="authorization.captured")
    assert (checked_in.actor_user, captured_audit.actor_user, captured_audit.actor_type) == (manager, manager, "staff")
    # the sweep after it finds nothing left to capture
    assert holds_capture_at_check_in.delay().get() == 0


def test_check_in_is_for_the_card_roles_at_their_locations(client, organization, location, card):
    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    staff_elsewhere = MembershipFactory(organization=organization, role="staff", locations=[LocationFactory(organization=organization)]).user
    organization.saved_card_roles = ["administrator", "manager", "staff"]
    organization.save(update_fields=["saved_card_roles"])
    client.force_login(staff_elsewhere)

    response = client.post(reverse("transactions:appointment_check_in", args=[appointment.pk]))

    assert response.status_code == 404
    appointment.refresh_from_db()
    assert (appointment.status, _holds(appointment)[0].status) == (AppointmentStatus.BOOKED, TransactionStatus.AUTHORIZED)
    client.force_login(MembershipFactory(organization=organization, role="staff", locations=[location]).user)
    organization.saved_card_roles = ["administrator", "manager"]
    organization.save(update_fields=["saved_card_roles"])
    assert client.post(reverse("transactions:appointment_check_in", args=[appointment.pk])).status_code == 403
    assert _holds(appointment)[0].status == TransactionStatus.AUTHORIZED


# -- release for a missed visit ----------------------------------------------------------------------------


def test_a_hold_for_a_cancelled_visit_is_released_by_the_rule(organization, location, card):
    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.CANCELLED)

    assert authorizations_release_for_missed_visits.delay().get() == 1

    (released,) = _holds(appointment)
    assert released.status == TransactionStatus.RELEASED
    assert SandboxPaymentIntent.objects.get().status == "canceled"
    audit = AuditEvent.objects.get(action="authorization.released")
    assert (audit.actor_type, audit.changes["rule"], audit.changes["reason"]) == ("system", "release_missed_visit", "Appointment cancelled")


# -- renewal before a hold lapses ----------------------------------------------------------------------------


def _held_then_rescheduled(organization, card, location):
    """A copay held 5 days ahead, then the visit moved 10 days out: the hold would lapse first."""
    hold_rule_on(organization, hours_before=144)
    appointment = visit(card, location, in_hours=5 * 24)
    holds_place_before_visits.delay().get()
    Appointment.objects.filter(pk=appointment.pk).update(starts_at=timezone.now() + timedelta(days=10))
    (old,) = _holds(appointment)
    return appointment, old


def test_a_hold_about_to_lapse_is_renewed_and_the_old_one_released(organization, location, card):
    appointment, old = _held_then_rescheduled(organization, card, location)
    assert holds_renew(now=timezone.now() + timedelta(days=5)) == 0  # too young

    assert holds_renew(now=timezone.now() + timedelta(days=6, hours=1)) == 1

    old, new = _holds(appointment)
    assert (old.status, old.hold_superseded_at is not None) == (TransactionStatus.RELEASED, True)
    assert (new.status, new.automation_rule, new.amount_cents) == (TransactionStatus.AUTHORIZED, "hold_renewal", old.amount_cents)
    intents = dict(SandboxPaymentIntent.objects.values_list("client_reference", "status"))
    assert intents == {str(old.pk): "canceled", str(new.pk): "requires_capture"}
    renewed = AuditEvent.objects.filter(action="authorization.renewed").order_by("pk")
    assert [(audit.transaction_id, audit.actor_type, audit.changes["rule"]) for audit in renewed] == [
        (old.pk, "system", "hold_renewal"), (new.pk, "system", "hold_renewal")
    ]
    assert any(entry.title == "Hold renewed before it lapsed" and entry.actor == "LumaPay" for entry in transaction_timeline(transaction=old))
    # still the hold rule's, captured at check-in like the first
    assert appointment_left_to_hold_rule(appointment)
    assert holds_renew(now=timezone.now() + timedelta(days=1)) == 0  # the new hold is a day old then
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.ARRIVED)
    assert holds_capture_at_check_in.delay().get() == 1
    new.refresh_from_db()
    assert new.status == TransactionStatus.SUCCEEDED


def test_a_renewal_the_bank_declines_releases_the_old_hold_and_leaves_the_copay_to_a_request(organization, location, card):
    appointment, old = _held_then_rescheduled(organization, card, location)
    SandboxPaymentMethod.objects.filter(id=card.gateway_payment_method_id).update(test_outcome="declined_when_charged")

    assert holds_renew(now=timezone.now() + timedelta(days=6, hours=1)) == 0

    old, new = _holds(appointment)
    assert (old.status, new.status, new.automation_rule) == (TransactionStatus.RELEASED, TransactionStatus.FAILED, "hold_renewal")
    failed = AuditEvent.objects.get(action="authorization.renewal_failed", transaction=old)
    assert failed.changes["error"] == "Your card was declined."
    assert not appointment_left_to_hold_rule(appointment)
    entry = next(e for e in transaction_timeline(transaction=old) if e.title == "Hold could not be renewed")
    assert entry.is_warning and entry.actor == "LumaPay" and "Your card was declined." in entry.detail


def test_a_hold_whose_card_was_removed_is_released_instead_of_renewed(organization, location, card, manager):
    appointment, old = _held_then_rescheduled(organization, card, location)
    saved_card_remove(saved_card=card, actor=manager)

    holds_renew(now=timezone.now() + timedelta(days=6, hours=1))

    (old,) = _holds(appointment)
    assert old.status == TransactionStatus.RELEASED
    assert AuditEvent.objects.filter(action="authorization.renewal_failed", transaction=old).exists()
    assert not appointment_left_to_hold_rule(appointment)


def test_a_hold_left_to_lapse_hands_the_copay_to_a_request(organization, location, card):
    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    (held,) = _holds(appointment)
    processor.hold_age(held.gateway_checkout_id, by=timedelta(days=8))
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.ARRIVED)

    assert holds_capture_at_check_in.delay().get() == 0

    held.refresh_from_db()
    assert held.status == TransactionStatus.RELEASED
    assert not appointment_left_to_hold_rule(appointment)


def test_the_demo_ages_a_sandbox_hold_and_the_beat_renews_it(organization, location, card):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    (held,) = _holds(appointment)
    Appointment.objects.filter(pk=appointment.pk).update(starts_at=timezone.now() + timedelta(days=3))

    call_command("sandbox_hold_age", str(held.pk), "--days", "6.5")

    from transactions.tasks import holds_renew as holds_renew_task

    assert holds_renew_task.delay().get() == 1
    old, new = _holds(appointment)
    assert (old.status, new.status) == (TransactionStatus.RELEASED, TransactionStatus.AUTHORIZED)
    with pytest.raises(CommandError, match="Only an amount held at the Sandbox"):
        call_command("sandbox_hold_age", str(old.pk), "--days", "1")


# -- the same rules on Stripe (localstripe): the passes are gateway-neutral -----------------------------------


def test_on_stripe_the_copay_is_held_by_rule_and_captured_at_check_in(stripe_world, stripe_organization, patient, location):
    from transactions.services.saved_cards import card_on_file_consent_text, saved_card_setup_begin, saved_card_setup_complete

    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=stripe_organization, patient=patient),
        consent_given=True, consent_text=card_on_file_consent_text(stripe_organization), ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/", cancel_url="http://testserver/pay/t/details/",
    )  # fmt: skip
    stripe_world.checkout.save_card(start.checkout_id)
    card = saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))
    hold_rule_on(stripe_organization)
    appointment = visit(card, location)

    assert holds_place_before_visits.delay().get() == 1

    (held,) = _holds(appointment)
    assert (held.status, held.automation_rule, held.vendor) == (TransactionStatus.AUTHORIZED, "hold_before_visit", "stripe")
    (create,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert create.params["capture_method"] == "manual"
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.ARRIVED)
    assert holds_capture_at_check_in.delay().get() == 1
    held.refresh_from_db()
    assert (held.status, held.charged_cents) == (TransactionStatus.SUCCEEDED, 3000)
    assert stripe_world.server.call("GET", f"/v1/payment_intents/{held.gateway_checkout_id}")["status"] == "succeeded"
    assert AuditEvent.objects.get(action="authorization.captured").changes["rule"] == "capture_at_check_in"


def test_on_stripe_capturing_a_hold_stripe_let_go_records_the_release_and_says_so(
    stripe_world, stripe_organization, patient, location, manager
):
    from lumapay.errors import ApplicationError
    from transactions.services.saved_cards import (
        authorization_capture,
        card_on_file_consent_text,
        saved_card_setup_begin,
        saved_card_setup_complete,
    )

    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=stripe_organization, patient=patient),
        consent_given=True, consent_text=card_on_file_consent_text(stripe_organization), ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/", cancel_url="http://testserver/pay/t/details/",
    )  # fmt: skip
    stripe_world.checkout.save_card(start.checkout_id)
    card = saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))
    hold_rule_on(stripe_organization)
    appointment = visit(card, location)
    holds_place_before_visits.delay().get()
    (held,) = _holds(appointment)
    # Stripe cancels an uncaptured PaymentIntent after 7 days by itself
    stripe_world.server.call("POST", f"/v1/payment_intents/{held.gateway_checkout_id}/cancel")
    # Stripe refuses to capture it (localstripe would answer 200: Stripe's real answer is given here)
    stripe_world.http.answer_once(
        "POST", f"/v1/payment_intents/{held.gateway_checkout_id}/capture", status=400,
        body={"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                        "message": "This PaymentIntent could not be captured because it has a status of canceled."}},
    )  # fmt: skip

    with pytest.raises(ApplicationError, match="The held amount was not captured"):
        authorization_capture(organization=stripe_organization, actor=manager, transaction=held)

    held.refresh_from_db()
    assert (held.status, held.hold_claimed_at) == (TransactionStatus.RELEASED, None)
    assert not appointment_left_to_hold_rule(appointment)


def test_a_hold_being_captured_is_not_renewed_and_a_hold_being_renewed_is_not_captured(organization, location, card):
    """The patient checks in while a renewal pass reaches their hold: one of the two wins, never
    both (two holds captured for one visit)."""
    appointment, old = _held_then_rescheduled(organization, card, location)
    # A capture has claimed the hold (the sweep or Check in, this instant): the renewal leaves it.
    Transaction.objects.filter(pk=old.pk).update(hold_claimed_at=timezone.now())
    assert holds_renew(now=timezone.now() + timedelta(days=6, hours=1)) == 0
    assert _holds(appointment) == [old]

    # A renewal has begun to replace it: a capture of the old hold is refused (the renewal's is captured).
    Transaction.objects.filter(pk=old.pk).update(hold_claimed_at=None, hold_superseded_at=timezone.now())
    from lumapay.errors import ApplicationError
    from transactions.services.saved_cards import authorization_capture

    with pytest.raises(ApplicationError, match="replaced by a renewed one"):
        authorization_capture(organization=organization, actor=None, transaction=old, rule=CollectionRule.CAPTURE_AT_CHECK_IN)
    old.refresh_from_db()
    assert old.status == TransactionStatus.AUTHORIZED and old.charged_cents == 0


def test_a_visit_no_longer_ahead_gets_no_renewal(organization, location, card):
    appointment, old = _held_then_rescheduled(organization, card, location)
    Appointment.objects.filter(pk=appointment.pk).update(status=AppointmentStatus.ARRIVED)

    assert holds_renew(now=timezone.now() + timedelta(days=6, hours=1)) == 0
    assert _holds(appointment) == [old]
