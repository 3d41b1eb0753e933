"""Quiet hours in the clinic's time zone (across zones and daylight saving time), and copay
requests that follow their visit: a reschedule moves it, a cancellation or no-show cancels it,
whether the news comes from a FHIR sync or an upload."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus, ImportSource
from ehr_sync.models import Appointment
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from transactions.enums import CollectionRule, PaymentRequestStatus
from transactions.models import PaymentRequest, PaymentRequestDelivery
from transactions.selectors.collection_schedule import copay_requests_due, is_quiet, quiet_hours_end_after
from transactions.services.collection_schedule import collection_schedule_run

from ..factories import AppointmentFactory, LocationFactory, OrganizationFactory, PatientFactory
from .collection_support import appointment_record, ehr_import, hours_from_now, patient_record, rules_on

pytestmark = pytest.mark.django_db
UTC = datetime.timezone.utc


@pytest.fixture
def run_pass(django_capture_on_commit_callbacks):
    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return collection_schedule_run(**kwargs)

    return run


def _clinic(zone):
    organization = OrganizationFactory(timezone=zone)
    rules_on(organization, quiet_hours_start=datetime.time(21, 0), quiet_hours_end=datetime.time(8, 0))
    return organization


def _appointment_at(organization, starts_at):
    return AppointmentFactory(
        patient=PatientFactory(organization=organization), location=LocationFactory(organization=organization), starts_at=starts_at
    )


def _due(now):
    return set(copay_requests_due(now=now).values_list("organization__timezone", flat=True))


def test_quiet_hours_are_the_clinics_own_across_time_zones():
    new_york, tokyo = _clinic("America/New_York"), _clinic("Asia/Tokyo")
    # 01:30 UTC on 1 July: 21:30 in New York (quiet), 10:30 in Tokyo (not).
    now = datetime.datetime(2026, 7, 1, 1, 30, tzinfo=UTC)
    _appointment_at(new_york, now + datetime.timedelta(hours=20))
    _appointment_at(tokyo, now + datetime.timedelta(hours=20))

    assert _due(now) == {"Asia/Tokyo"}
    # 12:30 UTC: 08:30 in New York, 21:30 in Tokyo.
    assert _due(now + datetime.timedelta(hours=11)) == {"America/New_York"}


def test_quiet_hours_follow_daylight_saving_time():
    new_york = _clinic("America/New_York")
    # 12:30 UTC is 07:30 on Saturday 7 March 2026 (EST, quiet) and 08:30 on Sunday 8 March (EDT).
    saturday = datetime.datetime(2026, 3, 7, 12, 30, tzinfo=UTC)
    sunday = datetime.datetime(2026, 3, 8, 12, 30, tzinfo=UTC)
    _appointment_at(new_york, sunday + datetime.timedelta(hours=10))

    assert _due(saturday) == set()
    assert _due(sunday) == {"America/New_York"}
    # And back in November: 12:30 UTC is 07:30 EST on Sunday 1 November 2026 (quiet again).
    november = datetime.datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    _appointment_at(new_york, november + datetime.timedelta(hours=10))
    assert _due(november) == set()


def test_quiet_hours_inside_one_day_and_none_at_all():
    clinic = _clinic("Europe/Madrid")
    rules_on(clinic, quiet_hours_start=datetime.time(12, 0), quiet_hours_end=datetime.time(14, 0))
    noon = datetime.datetime(2026, 7, 1, 10, 30, tzinfo=UTC)  # 12:30 in Madrid (CEST)
    _appointment_at(clinic, noon + datetime.timedelta(hours=5))
    assert _due(noon) == set()
    assert _due(noon + datetime.timedelta(hours=2)) == {"Europe/Madrid"}
    rules_on(clinic, quiet_hours_start=datetime.time(9, 0), quiet_hours_end=datetime.time(9, 0))
    assert _due(noon) == {"Europe/Madrid"}


def test_the_python_twin_says_when_quiet_hours_end_across_daylight_saving_time():
    clinic = _clinic("America/New_York")
    rules = clinic.collection_rules
    # 22:00 EST on Saturday 7 March: quiet until 08:00 EDT on Sunday, which is 12:00 UTC.
    moment = datetime.datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    assert is_quiet(rules, moment, clinic.timezone)
    assert quiet_hours_end_after(rules, moment, clinic.timezone) == datetime.datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert quiet_hours_end_after(rules, moment + datetime.timedelta(hours=10), clinic.timezone) == moment + datetime.timedelta(hours=10)


def test_a_request_due_inside_quiet_hours_is_made_when_they_end(run_pass, organization, location):
    organization.timezone = "America/Chicago"
    organization.save()
    rules_on(organization, quiet_hours_start=datetime.time(21, 0), quiet_hours_end=datetime.time(8, 0))
    zone = ZoneInfo("America/Chicago")
    local_now = timezone.now().astimezone(zone)
    quiet = is_quiet(organization.collection_rules, timezone.now(), organization.timezone)
    AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(20))

    outcome = run_pass()

    assert outcome.copay_sent == (0 if quiet else 1), local_now
    assert len(mail.outbox) == (0 if quiet else 1)


# -- reschedules and cancellations, through the importer ----------------------------------------------


T0 = datetime.datetime(2026, 1, 1, tzinfo=UTC)


def _synced_visit(organization, location, starts_at, source=ImportSource.FHIR):
    ehr_import(
        organization,
        patients=[patient_record("P-1", at=T0)],
        appointments=[appointment_record("A-1", patient="P-1", starts_at=starts_at, at=T0, location=location.name)],
        source=source,
    )
    return Appointment.objects.get(organization=organization, external_ehr_id="A-1")


def _visit_update(organization, location, *, at, source=ImportSource.FHIR, **values):
    values.setdefault("starts_at", Appointment.objects.get(organization=organization, external_ehr_id="A-1").starts_at)
    ehr_import(
        organization,
        appointments=[appointment_record("A-1", patient="P-1", at=at, location=location.name, **values)],
        source=source,
    )


def test_a_reschedule_before_the_request_moves_when_it_is_due(run_pass, organization, location):
    rules_on(organization, copay_request_hours_before=24)
    appointment = _synced_visit(organization, location, hours_from_now(30))
    assert run_pass().copay_sent == 0

    _visit_update(organization, location, at=T0 + datetime.timedelta(hours=1), starts_at=hours_from_now(20))
    assert run_pass().copay_sent == 1
    appointment.refresh_from_db()
    assert PaymentRequest.objects.get(appointment=appointment).expires_at == appointment.starts_at + datetime.timedelta(hours=72)


def test_a_reschedule_after_the_request_moves_its_link_and_tells_the_patient_nothing(run_pass, organization, location):
    rules_on(organization)
    appointment = _synced_visit(organization, location, hours_from_now(20))
    run_pass()
    request = PaymentRequest.objects.get(appointment=appointment)
    deliveries = PaymentRequestDelivery.objects.filter(payment_request=request).count()
    old_expiry = request.expires_at

    new_start = hours_from_now(100)
    _visit_update(organization, location, at=T0 + datetime.timedelta(hours=1), starts_at=new_start)
    outcome = run_pass()

    request.refresh_from_db()
    assert outcome.copay_moved == 1
    assert request.status == PaymentRequestStatus.OPEN
    assert request.expires_at == new_start + datetime.timedelta(hours=72)
    assert PaymentRequestDelivery.objects.filter(payment_request=request).count() == deliveries
    event = AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_MOVED)
    assert event.actor_type == ActorType.SYSTEM
    assert event.changes["rule"] == CollectionRule.COPAY_BEFORE_VISIT
    assert event.changes["expires_at"] == [old_expiry.isoformat(), request.expires_at.isoformat()]
    assert event.changes["patient_told"] is False
    assert PaymentRequest.objects.filter(appointment=appointment).count() == 1
    assert run_pass().copay_moved == 0


@pytest.mark.parametrize("status", [AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW])
@pytest.mark.parametrize("source", [ImportSource.FHIR, ImportSource.UPLOAD])
def test_a_cancelled_or_missed_visit_cancels_its_open_request(run_pass, organization, location, status, source):
    rules_on(organization)
    appointment = _synced_visit(organization, location, hours_from_now(20), source=source)
    run_pass()
    request = PaymentRequest.objects.get(appointment=appointment)

    _visit_update(organization, location, at=T0 + datetime.timedelta(hours=1), status=status, source=source)
    outcome = run_pass()

    request.refresh_from_db()
    assert outcome.copay_cancelled == 1
    assert request.status == PaymentRequestStatus.CANCELLED
    assert request.cancelled_by is None
    event = AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_CANCELLED)
    assert event.actor_type == ActorType.SYSTEM
    assert event.changes["rule"] == CollectionRule.COPAY_BEFORE_VISIT
    assert run_pass().copay_cancelled == 0
    # Booked again later: the one automatic request stays the one (cancelled); staff ask by hand.
    _visit_update(organization, location, at=T0 + datetime.timedelta(hours=2), status=AppointmentStatus.BOOKED)
    assert run_pass().copay_sent == 0
    assert PaymentRequest.objects.filter(appointment=appointment).count() == 1


def test_an_upload_sourced_clinic_gets_its_copay_requests(run_pass, organization, location):
    rules_on(organization)
    appointment = _synced_visit(organization, location, hours_from_now(20), source=ImportSource.UPLOAD)

    assert run_pass().copay_sent == 1
    assert PaymentRequest.objects.get(appointment=appointment).automation_rule == CollectionRule.COPAY_BEFORE_VISIT
    assert [m.to for m in mail.outbox] == [["maria@mail.example"]]


def test_a_paid_request_is_not_cancelled_by_a_later_cancellation(run_pass, organization, location):
    rules_on(organization)
    appointment = _synced_visit(organization, location, hours_from_now(20))
    run_pass()
    PaymentRequest.objects.filter(appointment=appointment).update(status=PaymentRequestStatus.PAID)

    _visit_update(organization, location, at=T0 + datetime.timedelta(hours=1), status=AppointmentStatus.CANCELLED)
    assert run_pass().copay_cancelled == 0
    assert PaymentRequest.objects.get(appointment=appointment).status == PaymentRequestStatus.PAID
