"""The collection scheduler under concurrency and failure (real PostgreSQL, real threads, a real
process killed): whatever happens, every appointment gets exactly one automatic copay request, and
a reschedule and a cancellation arriving while a request is being sent leave the state the last
EHR version says."""

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from django.core import mail
from django.db import connection
from django.db.models import Count

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from lumapay.tenant_rls import all_organizations
from transactions.enums import CollectionRule, PaymentRequestStatus
from transactions.models import PaymentRequest
from transactions.services import patient_messages, payment_requests
from transactions.services.collection_schedule import collection_schedule_run

from ..factories import AppointmentFactory, LocationFactory, OrganizationFactory, PatientFactory
from ..processes import BASE_DIR, database_url_for_subprocesses
from .collection_support import appointment_record, ehr_import, hours_from_now, patient_record, rules_on

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
WAIT_SECONDS = 30


def _due_world(organizations=3, per_organization=20):
    appointments = []
    for n in range(organizations):
        organization = OrganizationFactory()
        rules_on(organization)
        location = LocationFactory(organization=organization)
        for i in range(per_organization):
            patient = PatientFactory(organization=organization, sms_consent=False)
            appointments.append(AppointmentFactory(patient=patient, location=location, starts_at=hours_from_now(2 + i / 10)))
    return appointments


def _in_thread(target, errors):
    def run():
        try:
            with all_organizations():
                target()
        except BaseException as error:  # the test reports what a thread died of
            errors.append(error)
        finally:
            connection.close()

    return threading.Thread(target=run)


def _requests_per_appointment(appointments):
    counts = dict(
        PaymentRequest.objects.filter(automation_rule=CollectionRule.COPAY_BEFORE_VISIT)
        .values_list("appointment_id")
        .annotate(n=Count("id"))
    )
    return {appointment.pk: counts.get(appointment.pk, 0) for appointment in appointments}


def test_two_passes_at_once_make_one_request_per_appointment():
    appointments = _due_world()
    start = threading.Barrier(2)
    outcomes, errors = [], []

    def one_pass():
        start.wait(WAIT_SECONDS)
        outcomes.append(collection_schedule_run(batch_size=7))

    threads = [_in_thread(one_pass, errors) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS * 2)

    assert errors == []
    assert set(_requests_per_appointment(appointments).values()) == {1}
    assert sum(outcome.copay_sent for outcome in outcomes) == len(appointments)
    # Each message owed once: one e-mail per appointment.
    assert len(mail.outbox) == len(appointments)


class _Died(BaseException):
    """A worker's death in the middle of its batch (not an error the pass could catch)."""


def test_a_pass_that_dies_mid_batch_leaves_its_appointments_to_the_next_and_still_one_each(monkeypatch):
    appointments = _due_world(organizations=2, per_organization=15)
    original = payment_requests.payment_link_deliveries_owe
    holding, release = threading.Event(), threading.Event()
    calls = {"dying": 0}

    def owe(**kwargs):
        if threading.current_thread().name == "dying":
            calls["dying"] += 1
            if calls["dying"] == 4:
                holding.set()  # three requests made, uncommitted, its batch's rows locked
                release.wait(WAIT_SECONDS)
                raise _Died()
        return original(**kwargs)

    monkeypatch.setattr(payment_requests, "payment_link_deliveries_owe", owe)
    errors, outcomes = [], []
    dying = _in_thread(lambda: collection_schedule_run(batch_size=10), errors)
    dying.name = "dying"
    dying.start()
    assert holding.wait(WAIT_SECONDS)

    # Meanwhile another pass takes what the dying one has not locked.
    other = _in_thread(lambda: outcomes.append(collection_schedule_run(batch_size=10)), errors)
    other.start()
    other.join(WAIT_SECONDS)
    release.set()
    dying.join(WAIT_SECONDS)

    assert [type(error) for error in errors] == [_Died]
    assert outcomes[0].copay_sent == len(appointments) - 10
    per_appointment = _requests_per_appointment(appointments)
    assert sorted(per_appointment.values()).count(0) == 10  # the dead batch was rolled back whole

    with all_organizations():
        assert collection_schedule_run().copay_sent == 10
    assert set(_requests_per_appointment(appointments).values()) == {1}


_KILLED_PASS = textwrap.dedent(
    """
    import os, sys, time
    import django
    django.setup()
    from lumapay.tenant_rls import all_organizations
    from transactions.services import collection_schedule, payment_requests

    original = payment_requests.payment_request_send
    made = 0

    def send(**kwargs):
        global made
        made += 1
        if made == 5:
            print("MID-BATCH", flush=True)
            time.sleep(600)  # killed here, four requests made and not committed
        return original(**kwargs)

    collection_schedule.payment_request_send = send
    with all_organizations():
        collection_schedule.collection_schedule_run(batch_size=20)
    """
)


def test_a_worker_process_killed_mid_pass_leaves_exactly_one_request_per_appointment():
    appointments = _due_world(organizations=2, per_organization=12)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lumapay.settings",
        "DEBUG": "true",
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "memory://",
        "SMS_BACKEND": "memory",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PASS], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = ""
        deadline = time.monotonic() + WAIT_SECONDS
        while "MID-BATCH" not in line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
        assert "MID-BATCH" in line, process.stdout.read() if process.poll() is not None else line
        assert PaymentRequest.objects.count() == 0  # nothing committed yet
        process.send_signal(signal.SIGKILL)
        process.wait(WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    # The killed session's locks go with its connection: the next pass takes every appointment.
    deadline = time.monotonic() + WAIT_SECONDS
    sent = 0
    while sent < len(appointments) and time.monotonic() < deadline:
        with all_organizations():
            sent += collection_schedule_run().copay_sent
    assert set(_requests_per_appointment(appointments).values()) == {1}
    with all_organizations():
        assert collection_schedule_run().copay_sent == 0


# -- a reschedule and a cancellation while the request is being sent ----------------------------------


def _synced_visit():
    organization = OrganizationFactory()
    rules_on(organization)
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    ehr_import(
        organization,
        patients=[patient_record("P-1", at=T0)],
        appointments=[appointment_record("A-1", patient="P-1", starts_at=hours_from_now(20), at=T0, location=location.name)],
    )
    return organization, location, Appointment.objects.get(organization=organization, external_ehr_id="A-1")


def _ehr_versions(organization, location, versions):
    """Each version of A-1 the EHR sends, in the order they arrive, through the real importer."""

    def run():
        for at, values in versions:
            ehr_import(
                organization,
                appointments=[appointment_record("A-1", patient="P-1", at=at, location=location.name, **values)],
            )

    return run


def _send_with_the_ehr_in_the_middle(monkeypatch, where, ehr_run):
    """A pass whose request is being sent (``where``: while it is made, under the appointment's
    lock; or while its e-mail is handed to the provider, after commit) when the EHR's versions
    arrive in another thread."""
    reached, errors, blocked = threading.Event(), [], []
    importer = _in_thread(ehr_run, errors)

    def pause_for_the_ehr():
        if not reached.is_set():
            reached.set()
            importer.start()
            # Made under the appointment's lock: the importer waits for our commit (it locks the
            # row too); after commit it runs while the provider has the message.
            importer.join(2 if where == "made" else WAIT_SECONDS)
            # Under the appointment's lock the importer is still waiting; after commit it is done.
            blocked.append(importer.is_alive())

    if where == "made":
        original = payment_requests.payment_link_deliveries_owe

        def owe(**kwargs):
            pause_for_the_ehr()
            return original(**kwargs)

        monkeypatch.setattr(payment_requests, "payment_link_deliveries_owe", owe)
    else:
        original_send = patient_messages._email_send

        def email_send(message):
            pause_for_the_ehr()
            return original_send(message)

        monkeypatch.setattr(patient_messages, "_email_send", email_send)

    with all_organizations():
        first = collection_schedule_run()
    importer.join(WAIT_SECONDS)
    assert errors == []
    assert reached.is_set() and first.copay_sent == 1
    assert blocked == [where == "made"]
    with all_organizations():
        return collection_schedule_run()  # the next minute's pass


@pytest.mark.parametrize("where", ["made", "handed_to_the_provider"])
def test_a_reschedule_then_a_cancellation_mid_send_end_cancelled(monkeypatch, where):
    organization, location, appointment = _synced_visit()
    new_start = hours_from_now(60)
    ehr_run = _ehr_versions(
        organization,
        location,
        [
            (T0 + datetime.timedelta(hours=1), {"starts_at": new_start}),
            (T0 + datetime.timedelta(hours=2), {"starts_at": new_start, "status": AppointmentStatus.CANCELLED}),
        ],
    )

    second = _send_with_the_ehr_in_the_middle(monkeypatch, where, ehr_run)

    appointment.refresh_from_db()
    request = PaymentRequest.objects.get(appointment=appointment)
    assert (appointment.status, appointment.starts_at) == (AppointmentStatus.CANCELLED, new_start)
    assert second.copay_cancelled == 1
    assert request.status == PaymentRequestStatus.CANCELLED
    cancelled = AuditEvent.objects.get(payment_request=request, action=AuditAction.PAYMENT_REQUEST_CANCELLED)
    assert (cancelled.actor_type, cancelled.changes["rule"]) == (ActorType.SYSTEM, CollectionRule.COPAY_BEFORE_VISIT)
    assert PaymentRequest.objects.filter(appointment=appointment).count() == 1


@pytest.mark.parametrize("where", ["made", "handed_to_the_provider"])
def test_a_cancellation_arriving_after_a_newer_reschedule_leaves_the_visit_moved(monkeypatch, where):
    organization, location, appointment = _synced_visit()
    new_start = hours_from_now(60)
    ehr_run = _ehr_versions(
        organization,
        location,
        [
            # The EHR's reschedule is its last version; its older cancellation arrives late.
            (T0 + datetime.timedelta(hours=2), {"starts_at": new_start}),
            (T0 + datetime.timedelta(hours=1), {"starts_at": appointment.starts_at, "status": AppointmentStatus.CANCELLED}),
        ],
    )

    second = _send_with_the_ehr_in_the_middle(monkeypatch, where, ehr_run)

    appointment.refresh_from_db()
    request = PaymentRequest.objects.get(appointment=appointment)
    assert (appointment.status, appointment.starts_at) == (AppointmentStatus.BOOKED, new_start)
    assert (second.copay_cancelled, second.copay_moved) == (0, 1)
    assert request.status == PaymentRequestStatus.OPEN
    assert request.expires_at == new_start + datetime.timedelta(hours=72)
