"""Copay before the visit: the scheduler's pass makes one request per due appointment, by the
patient's channels and in their language, recorded as LumaPay with the rule."""

import datetime

import pytest
from django.core import mail
from django.db import IntegrityError
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus
from lumapay import sms
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from org_profile.enums import PaymentGateway
from transactions.enums import (
    CollectionRule,
    PaymentRequestKind,
    PaymentRequestStatus,
    SavedCardStatus,
    TransactionStatus,
)
from transactions.models import PaymentRequest, PaymentRequestDelivery, SavedCard, Transaction
from transactions.selectors.collection_schedule import copay_requests_due, without_those_left_to_hold_rule
from transactions.services.saved_cards import card_on_file_consent_text
from transactions.services.collection_schedule import (
    COPAY_BILLING_ITEM,
    _copay_request_make,
    collection_schedule_run,
)

from ..factories import AppointmentFactory, PatientFactory, PaymentRequestFactory
from .collection_support import hours_from_now, rules_on

pytestmark = pytest.mark.django_db


def _automatic(appointment):
    return PaymentRequest.objects.filter(appointment=appointment, automation_rule=CollectionRule.COPAY_BEFORE_VISIT)


@pytest.fixture
def run_pass(django_capture_on_commit_callbacks):
    """One pass, with the messages it owes sent after commit as in production."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return collection_schedule_run(**kwargs)

    return run


def _due_ids(now=None):
    """The appointments the pass asks a copay for: the due ones, less those the hold rule takes."""
    to_ask, _held = without_those_left_to_hold_rule(list(copay_requests_due(now=now or timezone.now())))
    return sorted(appointment.pk for appointment in to_ask)


def test_a_due_appointment_gets_one_request_by_every_channel(run_pass, organization, location):
    rules_on(organization)
    patient = PatientFactory(organization=organization, email="maria@mail.example", mobile_phone="+12175550111")
    appointment = AppointmentFactory(patient=patient, location=location, starts_at=hours_from_now(30), copay_cents=3500)

    outcome = run_pass()

    assert outcome.copay_sent == 1
    request = _automatic(appointment).get()
    assert (request.kind, request.amount_cents, request.location, request.patient) == (
        PaymentRequestKind.COPAY, 3500, location, patient,
    )
    assert request.billing_item == COPAY_BILLING_ITEM
    assert request.created_by is None
    assert request.status == PaymentRequestStatus.OPEN
    assert request.expires_at == appointment.starts_at + datetime.timedelta(hours=72)
    assert sorted(PaymentRequestDelivery.objects.filter(payment_request=request).values_list("channel", flat=True)) == [
        "email", "sms",
    ]
    assert [m.to for m in mail.outbox] == [["maria@mail.example"]]
    assert [m.to for m in sms.outbox] == ["+12175550111"]
    event = AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_SENT)
    assert event.actor_type == ActorType.SYSTEM and event.actor_user is None
    assert event.changes["rule"] == CollectionRule.COPAY_BEFORE_VISIT
    assert event.changes["amount_cents"] == [None, 3500]

    assert run_pass().copay_sent == 0
    assert _automatic(appointment).count() == 1
    assert len(mail.outbox) == 1


def test_the_message_is_in_the_patients_language(run_pass, organization, location):
    rules_on(organization)
    patient = PatientFactory(organization=organization, preferred_language="es", sms_consent=False)
    AppointmentFactory(patient=patient, location=location, starts_at=hours_from_now(5))

    run_pass()

    assert len(mail.outbox) == 1
    english = PatientFactory(organization=organization, preferred_language="en", sms_consent=False)
    AppointmentFactory(patient=english, location=location, starts_at=hours_from_now(5))
    run_pass()
    spanish_subject, english_subject = mail.outbox[0].subject, mail.outbox[1].subject
    assert spanish_subject != english_subject
    assert "pago" in (spanish_subject + mail.outbox[0].body).lower()
    # The billing item is written in the patient's language, as staff would type it for them.
    assert PaymentRequest.objects.get(patient=patient).billing_item == "Su próxima cita"
    assert "Su próxima cita" in mail.outbox[0].body
    assert PaymentRequest.objects.get(patient=english).billing_item == COPAY_BILLING_ITEM


def test_only_appointments_inside_the_lead_and_not_started_are_due(organization, location):
    rules_on(organization, copay_request_hours_before=24)
    inside = AppointmentFactory(organization=organization, patient__organization=organization, location=location, starts_at=hours_from_now(23))
    AppointmentFactory(organization=organization, patient__organization=organization, location=location, starts_at=hours_from_now(25))
    AppointmentFactory(organization=organization, patient__organization=organization, location=location, starts_at=hours_from_now(-1))

    assert _due_ids() == [inside.pk]


def test_what_is_never_due(organization, location, other_organization):
    rules_on(organization)
    soon = hours_from_now(10)

    def appointment(**values):
        patient_values = {k.removeprefix("patient__"): v for k, v in values.items() if k.startswith("patient__")}
        values = {k: v for k, v in values.items() if not k.startswith("patient__")}
        patient = PatientFactory(organization=organization, **patient_values)
        return AppointmentFactory(patient=patient, location=location, starts_at=soon, **values)

    due = appointment()
    appointment(copay_cents=0)
    appointment(status=AppointmentStatus.CANCELLED)
    appointment(status=AppointmentStatus.ARRIVED)
    appointment(patient__email="", patient__sms_consent=False)
    staff_asked = appointment()
    PaymentRequestFactory(patient=staff_asked.patient, location=location, appointment=staff_asked, kind=PaymentRequestKind.COPAY)
    paid = appointment()
    Transaction.objects.create(
        organization=organization, patient=paid.patient, location=location, appointment=paid, amount_cents=2500,
        vendor=PaymentGateway.SANDBOX, status=TransactionStatus.SUCCEEDED, charged_cents=2500,
    )
    # Another clinic, its rule off.
    AppointmentFactory(patient=PatientFactory(organization=other_organization), starts_at=soon)

    assert _due_ids() == [due.pk]


def _card_on_file(patient, vendor=PaymentGateway.SANDBOX, status=SavedCardStatus.ACTIVE):
    return SavedCard.objects.create(
        organization=patient.organization, patient=patient, vendor=vendor, status=status,
        gateway_customer_id=f"cus_{patient.pk}", consent_text=card_on_file_consent_text(patient.organization),
        consented_at=timezone.now(),
    )


def _hold(appointment, status, *, created_ago=datetime.timedelta(0)):
    hold = Transaction.objects.create(
        organization=appointment.organization, patient=appointment.patient, location=appointment.location,
        appointment=appointment, amount_cents=appointment.copay_cents, vendor=PaymentGateway.SANDBOX, status=status,
        automation_rule=CollectionRule.HOLD_BEFORE_VISIT,
    )
    Transaction.objects.filter(pk=hold.pk).update(created_at=timezone.now() - created_ago)
    return hold


def test_an_appointment_left_to_the_hold_rule_gets_no_request_until_the_hold_falls_through(organization, location):
    rules_on(organization, hold_enabled=True)
    appointment = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(10))
    card = _card_on_file(appointment.patient)
    assert _due_ids() == []

    # A card with another gateway, or removed, is not the hold rule's.
    SavedCard.objects.filter(pk=card.pk).update(vendor=PaymentGateway.STRIPE)
    assert _due_ids() == [appointment.pk]
    SavedCard.objects.filter(pk=card.pk).update(vendor=PaymentGateway.SANDBOX, status=SavedCardStatus.REMOVED)
    assert _due_ids() == [appointment.pk]
    SavedCard.objects.filter(pk=card.pk).update(status=SavedCardStatus.ACTIVE)

    # The hold rule turned off: the copay rule asks.
    rules_on(organization, hold_enabled=False)
    assert _due_ids() == [appointment.pk]
    rules_on(organization, hold_enabled=True)

    hold = _hold(appointment, TransactionStatus.FAILED)
    assert _due_ids() == [appointment.pk]
    Transaction.objects.filter(pk=hold.pk).update(status=TransactionStatus.RELEASED)
    assert _due_ids() == [appointment.pk]


def test_a_hold_in_place_counts_as_collected_and_a_lapsed_one_falls_back_to_a_request(organization, location):
    rules_on(organization, hold_enabled=True)
    appointment = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(10))
    _card_on_file(appointment.patient)
    hold = _hold(appointment, TransactionStatus.AUTHORIZED)
    assert _due_ids() == []
    Transaction.objects.filter(pk=hold.pk).update(created_at=timezone.now() - datetime.timedelta(days=7, minutes=1))
    # Lapsed (past the processor's 7 days): nothing is held any more, the copay rule asks.
    assert _due_ids() == [appointment.pk]


def test_a_second_request_for_one_appointment_is_refused_by_the_database_and_the_pass_goes_on(run_pass, organization, location):
    rules_on(organization)
    first = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(3))
    second = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(4))
    assert _copay_request_make(first) is True

    # A pass that read the appointment before the first request committed.
    assert _copay_request_make(first) is False

    assert _automatic(first).count() == 1
    assert run_pass().copay_sent == 1
    assert _automatic(second).count() == 1
    with pytest.raises(IntegrityError):
        PaymentRequestFactory(
            patient=first.patient, location=location, appointment=first, automation_rule=CollectionRule.COPAY_BEFORE_VISIT
        )


def test_a_closed_location_skips_the_appointment_and_the_rest_are_sent(run_pass, organization, location, other_location):
    rules_on(organization)
    closed = AppointmentFactory(patient=PatientFactory(organization=organization), location=other_location, starts_at=hours_from_now(3))
    other_location.is_active = False
    other_location.save()
    fine = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(4))

    outcome = run_pass()

    assert (outcome.copay_sent, outcome.skipped) == (1, 1)
    assert not _automatic(closed).exists()
    assert _automatic(fine).exists()


def test_the_rule_off_sends_nothing(run_pass, organization, location):
    rules_on(organization, copay_request_enabled=False)
    AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(3))

    assert run_pass().copay_sent == 0
    assert PaymentRequest.objects.count() == 0
    assert mail.outbox == []
