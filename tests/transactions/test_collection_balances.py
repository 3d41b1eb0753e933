"""Balance requests and reminders: asked when a balance appears or grows above the threshold,
one open automatic request per patient, reminders on the cadence, each once, stopping when the
request closes, the balance is gone or the patient can no longer be reached."""

import datetime

import pytest
from django.core import mail
from django.db import IntegrityError
from django.utils import timezone

from ehr_sync.enums import ImportSource
from ehr_sync.models import Balance, Patient
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from transactions.enums import CollectionRule, PaymentRequestKind, PaymentRequestStatus
from transactions.models import BalanceAsked, PaymentReminder, PaymentRequest
from transactions.services.collection_schedule import balance_reminder_send, collection_schedule_run

from ..factories import AppointmentFactory, PatientFactory
from .collection_support import balance_record, ehr_import, patient_record, rules_on

pytestmark = pytest.mark.django_db
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def run_pass(django_capture_on_commit_callbacks):
    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return collection_schedule_run(**kwargs)

    return run


@pytest.fixture
def balance_rules(organization, location):
    return rules_on(organization, copay_request_enabled=False, balance_request_enabled=True, balance_threshold_cents=1000)


def _balance_requests(patient):
    return PaymentRequest.objects.filter(patient=patient, automation_rule=CollectionRule.BALANCE_REQUEST).order_by("pk")


def _set_balance(patient, cents):
    Balance.objects.update_or_create(
        patient=patient, defaults={"organization": patient.organization, "amount_due_cents": cents, "as_of": timezone.now()}
    )


def test_a_balance_above_the_threshold_is_asked_for_once(run_pass, balance_rules, organization, location):
    patient = PatientFactory(organization=organization, sms_consent=False)
    AppointmentFactory(patient=patient, location=location)
    _set_balance(patient, 12000)

    outcome = run_pass()

    assert outcome.balance_sent == 1
    request = _balance_requests(patient).get()
    assert (request.kind, request.amount_cents, request.location, request.created_by) == (
        PaymentRequestKind.BALANCE, 12000, location, None,
    )
    assert BalanceAsked.objects.get(patient=patient).asked_cents == 12000
    event = AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_SENT)
    assert (event.actor_type, event.changes["rule"]) == (ActorType.SYSTEM, CollectionRule.BALANCE_REQUEST)
    assert len(mail.outbox) == 1

    assert run_pass().balance_sent == 0
    assert _balance_requests(patient).count() == 1


def test_a_balance_at_or_below_the_threshold_or_with_the_rule_off_is_not_asked_for(run_pass, balance_rules, organization, location):
    at_threshold = PatientFactory(organization=organization)
    _set_balance(at_threshold, 1000)
    unreachable = PatientFactory(organization=organization, email="", sms_consent=False)
    _set_balance(unreachable, 5000)
    assert run_pass().balance_sent == 0

    asked = PatientFactory(organization=organization)
    _set_balance(asked, 5000)
    rules_on(organization, copay_request_enabled=False, balance_request_enabled=False)
    assert run_pass().balance_sent == 0
    assert PaymentRequest.objects.count() == 0


def test_a_balance_that_grows_while_asked_replaces_the_open_request(run_pass, balance_rules, organization, location):
    patient = PatientFactory(organization=organization)
    _set_balance(patient, 5000)
    run_pass()
    first = _balance_requests(patient).get()

    _set_balance(patient, 8000)
    outcome = run_pass()

    first.refresh_from_db()
    second = _balance_requests(patient).last()
    assert (outcome.balance_sent, outcome.balance_replaced) == (1, 1)
    assert first.status == PaymentRequestStatus.CANCELLED
    assert (second.status, second.amount_cents) == (PaymentRequestStatus.OPEN, 8000)
    cancelled = AuditEvent.objects.get(payment_request=first, action=AuditAction.PAYMENT_REQUEST_CANCELLED)
    assert cancelled.actor_type == ActorType.SYSTEM
    assert cancelled.changes["rule"] == CollectionRule.BALANCE_REQUEST
    assert cancelled.changes["reason"] == "Replaced by a request for the new balance."
    assert BalanceAsked.objects.get(patient=patient).asked_cents == 8000


def test_one_open_automatic_balance_request_per_patient_is_a_database_rule(balance_rules, organization, location):
    patient = PatientFactory(organization=organization)
    base = dict(organization=organization, patient=patient, location=location, kind=PaymentRequestKind.BALANCE,
                billing_item="Account balance", amount_cents=5000, expires_at=timezone.now() + datetime.timedelta(days=30),
                automation_rule=CollectionRule.BALANCE_REQUEST)
    PaymentRequest.objects.create(**base)
    with pytest.raises(IntegrityError):
        PaymentRequest.objects.create(**base)


def test_a_paid_balance_the_ehr_has_not_lowered_yet_is_not_asked_for_again(run_pass, balance_rules, organization, location):
    patient = PatientFactory(organization=organization)
    _set_balance(patient, 5000)
    run_pass()
    _balance_requests(patient).update(status=PaymentRequestStatus.PAID)

    assert run_pass().balance_sent == 0  # the EHR still says 5000: the payment is not posted yet

    _set_balance(patient, 0)
    run_pass()
    assert BalanceAsked.objects.get(patient=patient).asked_cents == 0
    _set_balance(patient, 5000)  # a new bill for the same amount
    assert run_pass().balance_sent == 1
    assert _balance_requests(patient).count() == 2


def test_a_balance_dropping_to_zero_cancels_the_open_request(run_pass, balance_rules, organization, location):
    patient = PatientFactory(organization=organization)
    _set_balance(patient, 5000)
    run_pass()
    _set_balance(patient, 0)

    assert run_pass().balance_cancelled == 1
    request = _balance_requests(patient).get()
    assert request.status == PaymentRequestStatus.CANCELLED
    assert AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_CANCELLED).changes["rule"] == (
        CollectionRule.BALANCE_REQUEST
    )


def test_balances_from_an_upload_are_asked_for_like_synced_ones(run_pass, balance_rules, organization, location):
    ehr_import(
        organization,
        patients=[patient_record("P-9", at=T0)],
        balances=[balance_record("P-9", cents=7700, at=T0)],
        source=ImportSource.UPLOAD,
    )
    patient = Patient.objects.get(organization=organization, external_ehr_id="P-9")

    assert run_pass().balance_sent == 1
    assert _balance_requests(patient).get().amount_cents == 7700
    ehr_import(organization, balances=[balance_record("P-9", cents=9900, at=T0 + datetime.timedelta(days=1))], source=ImportSource.UPLOAD)
    assert run_pass().balance_replaced == 1


# -- reminders --------------------------------------------------------------------------------------


@pytest.fixture
def asked(run_pass, balance_rules, organization, location):
    patient = PatientFactory(organization=organization, sms_consent=False)
    _set_balance(patient, 5000)
    run_pass()
    mail.outbox.clear()
    return _balance_requests(patient).get()


def _days_after(request, days, minutes=1):
    return request.created_at + datetime.timedelta(days=days, minutes=minutes)


def test_reminders_follow_the_cadence_once_each(run_pass, asked):
    assert run_pass(now=_days_after(asked, 2)).reminders_sent == 0
    assert run_pass(now=_days_after(asked, 3)).reminders_sent == 1
    assert run_pass(now=_days_after(asked, 3, minutes=5)).reminders_sent == 0
    assert run_pass(now=_days_after(asked, 7)).reminders_sent == 1
    assert run_pass(now=_days_after(asked, 14)).reminders_sent == 1
    assert run_pass(now=_days_after(asked, 20)).reminders_sent == 0

    assert list(PaymentReminder.objects.filter(payment_request=asked).values_list("number", "days_after")) == [
        (1, 3), (2, 7), (3, 14),
    ]
    assert len(mail.outbox) == 3
    events = AuditEvent.objects.filter(payment_request=asked, action=AuditAction.PAYMENT_REQUEST_REMINDED).order_by("pk")
    assert [(e.actor_type, e.changes["rule"], e.changes["reminder"]) for e in events] == [
        (ActorType.SYSTEM, CollectionRule.BALANCE_REMINDER, 1),
        (ActorType.SYSTEM, CollectionRule.BALANCE_REMINDER, 2),
        (ActorType.SYSTEM, CollectionRule.BALANCE_REMINDER, 3),
    ]


def test_a_pass_that_missed_steps_sends_only_the_current_reminder(run_pass, asked):
    assert run_pass(now=_days_after(asked, 15)).reminders_sent == 1
    assert list(PaymentReminder.objects.filter(payment_request=asked).values_list("number", flat=True)) == [3]
    assert len(mail.outbox) == 1


def test_a_reminder_is_recorded_once_whoever_sends_it(asked):
    now = _days_after(asked, 3)
    assert balance_reminder_send(payment_request_id=asked.pk, number=1, days_after=3, now=now) is True
    with pytest.raises(IntegrityError):
        balance_reminder_send(payment_request_id=asked.pk, number=1, days_after=3, now=now)
    assert PaymentReminder.objects.filter(payment_request=asked).count() == 1


@pytest.mark.parametrize("stop", ["paid", "cancelled", "expired", "balance_zero", "unreachable", "rule_off"])
def test_reminders_stop(run_pass, asked, organization, stop):
    if stop in ("paid", "cancelled"):
        PaymentRequest.objects.filter(pk=asked.pk).update(status=stop)
    elif stop == "expired":
        PaymentRequest.objects.filter(pk=asked.pk).update(expires_at=_days_after(asked, 2))
    elif stop == "balance_zero":
        Balance.objects.filter(patient_id=asked.patient_id).update(amount_due_cents=0)
    elif stop == "unreachable":
        Patient.objects.filter(pk=asked.patient_id).update(email="", sms_consent=False)
    else:
        rules_on(organization, copay_request_enabled=False, balance_request_enabled=False)

    assert run_pass(now=_days_after(asked, 3)).reminders_sent == 0
    assert not PaymentReminder.objects.exists()
    assert mail.outbox == []


def test_reminders_and_balance_requests_wait_for_the_end_of_the_clinics_quiet_hours(run_pass, organization, location):
    organization.timezone = "America/New_York"
    organization.save()
    rules_on(organization, copay_request_enabled=False, balance_request_enabled=True, balance_threshold_cents=1000,
             quiet_hours_start=datetime.time(21, 0), quiet_hours_end=datetime.time(8, 0))
    patient = PatientFactory(organization=organization, sms_consent=False)
    _set_balance(patient, 5000)
    day = (timezone.now() + datetime.timedelta(days=1)).date()
    night = datetime.datetime.combine(day, datetime.time(3, 0), tzinfo=datetime.timezone.utc)  # 22:00 or 23:00 in New York
    morning = datetime.datetime.combine(day, datetime.time(14, 0), tzinfo=datetime.timezone.utc)  # 09:00 or 10:00

    assert run_pass(now=night).balance_sent == 0
    assert run_pass(now=morning).balance_sent == 1
    request = _balance_requests(patient).get()

    later_night = night + datetime.timedelta(days=4)
    assert run_pass(now=later_night).reminders_sent == 0
    assert run_pass(now=morning + datetime.timedelta(days=4)).reminders_sent == 1
    assert PaymentReminder.objects.get(payment_request=request).number == 1
