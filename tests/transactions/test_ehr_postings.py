"""Payments, refunds and reversals posted back to the EHR (transactions/services/ehr_postings.py):
one posting per money event, sent over real MLLP on loopback to the test EHR of tests/mllp_ehr.py
(or to a real sekmet-fhir server), with backoff, a lease, staff's "Post again" and the daily
posting file of an upload-only organization."""

import csv
import datetime
import io
import threading

import pytest
from cryptography.fernet import Fernet
from django.db import connections
from django.utils import timezone

from ehr_sync.enums import ConnectionOption, EhrConnectionKind
from ehr_sync.models import EhrConnection
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from transactions.enums import CollectionRule, EhrPostingKind, EhrPostingStatus, TransactionEventKind as Kind
from transactions.models import EhrPosting, TransactionEvent
from transactions.services.ehr_postings import (
    ehr_posting_file,
    ehr_posting_owe,
    ehr_posting_send,
    ehr_postings_sweep,
)
from transactions.services.ledger import transaction_event_append
from transactions.services.refunds import refund_create
from tests.factories import AppointmentFactory, LocationFactory, PatientFactory
from tests.fhir_server import fhir_test_server_start, fhir_test_server_stop
from tests.mllp_ehr import MllpEhr

from .payments import card_pay, checkout_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def ehr():
    server = MllpEhr()
    yield server
    server.stop()


def hl7_posting_connection(organization, ehr, **options):
    return EhrConnection.objects.create(
        organization=organization, name="Clinic HL7", kind=EhrConnectionKind.HL7_MLLP,
        options={ConnectionOption.SENDING_FACILITY: f"CLINIC-{organization.pk}", ConnectionOption.POSTING_ENABLED: True,
                 ConnectionOption.OUTBOUND_ADDRESS: ehr.address, "timeout_seconds": 2, **options},
    )


def paid(organization, amount_cents=2500):
    location = LocationFactory(organization=organization, name="Downtown Clinic", ehr_location_id="loc-downtown")
    patient = PatientFactory(organization=organization, external_ehr_id="p-17")
    appointment = AppointmentFactory(patient=patient, location=location, external_ehr_id="a-17")
    transaction = checkout_transaction(organization=organization, patient=patient, location=location, amount_cents=amount_cents)
    transaction.appointment = appointment
    transaction.save(update_fields=["appointment"])
    return card_pay(transaction)


def due_now(posting):
    """The backoff has passed (the test does not wait minutes for it)."""
    EhrPosting.objects.filter(pk=posting.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))


def posting_audits(transaction):
    return list(
        AuditEvent.objects.filter(transaction=transaction, action__startswith="ehr_posting.")
        .order_by("pk")
        .values_list("action", "actor_type", "changes__rule", "changes__error")
    )


# -- owing ---------------------------------------------------------------------------------------


def test_a_payment_is_owed_with_its_ledger_event_and_posted_by_the_task_queued_on_commit(organization, ehr):
    connection = hl7_posting_connection(organization, ehr)

    # The Sandbox's webhook records the charge; its commit queues the posting's task (eager here).
    transaction = paid(organization)

    [posting] = EhrPosting.objects.filter(transaction=transaction)
    charge = TransactionEvent.objects.get(transaction=transaction, kind=Kind.CHARGE_SUCCEEDED)
    assert (posting.event_id, posting.connection_id, posting.kind, posting.amount_cents, posting.status, posting.attempts) == (
        charge.pk, connection.pk, EhrPostingKind.PAYMENT, 2500, EhrPostingStatus.POSTED, 1,
    )
    # Owed again (the sweep, a second path): the same row, and nothing is sent again.
    assert ehr_posting_owe(event=charge).pk == posting.pk
    ehr_posting_send(posting_id=posting.pk)
    assert EhrPosting.objects.filter(transaction=transaction).count() == 1
    assert len(ehr.received) == 1


def test_an_organization_without_a_posting_connection_owes_nothing(organization, ehr):
    hl7_posting_connection(organization, ehr, **{ConnectionOption.POSTING_ENABLED: False})

    transaction = paid(organization)

    assert not EhrPosting.objects.filter(transaction=transaction).exists()
    assert ehr_postings_sweep() == 0
    assert not EhrPosting.objects.exists()


def test_events_older_than_turning_posting_on_are_not_posted(organization, ehr):
    transaction = paid(organization)
    hl7_posting_connection(organization, ehr, **{ConnectionOption.POSTING_SINCE: timezone.now().isoformat()})

    ehr_postings_sweep()

    assert not EhrPosting.objects.filter(transaction=transaction).exists()


def test_the_sweep_owes_an_event_written_without_its_posting(organization, ehr):
    transaction = paid(organization)
    # Posting turned on a moment after the payment was recorded, by a path that knew nothing of it.
    hl7_posting_connection(
        organization, ehr, **{ConnectionOption.POSTING_SINCE: (timezone.now() - datetime.timedelta(hours=1)).isoformat()}
    )
    assert not EhrPosting.objects.exists()

    ehr_postings_sweep(now=timezone.now() + datetime.timedelta(minutes=2))

    [posting] = EhrPosting.objects.filter(transaction=transaction)
    assert posting.kind == EhrPostingKind.PAYMENT


def test_a_refund_and_a_lost_dispute_get_their_own_postings(organization, ehr, manager):
    hl7_posting_connection(organization, ehr)
    transaction = paid(organization, amount_cents=10000)

    refund_create(organization=organization, actor=manager, transaction=transaction, amount_cents=3000, reason="Overcharged")
    transaction_event_append(
        transaction=transaction, kind=Kind.DISPUTE_LOST, amount_cents=7000, idempotency_key="dispute:dp_1:lost",
        gateway_reference="dp_1",
    )

    postings = list(EhrPosting.objects.filter(transaction=transaction).values_list("kind", "amount_cents"))
    assert postings == [(EhrPostingKind.PAYMENT, 10000), (EhrPostingKind.REFUND, 3000), (EhrPostingKind.REVERSAL, 7000)]
    for posting in EhrPosting.objects.filter(transaction=transaction):
        ehr_posting_send(posting_id=posting.pk)
    assert [(filed.transaction_type, filed.amount) for filed in ehr.payments.values()] == [
        ("PY", "-100.00&USD"), ("AJ", "30.00&USD"), ("AJ", "70.00&USD"),
    ]
    assert set(EhrPosting.objects.filter(transaction=transaction).values_list("status", flat=True)) == {EhrPostingStatus.POSTED}


# -- sending -------------------------------------------------------------------------------------


def test_an_aa_marks_it_posted_with_lumapay_as_the_actor_and_the_rule(organization, ehr):
    hl7_posting_connection(organization, ehr)
    transaction = paid(organization)  # posted by the task its commit queued

    posting = EhrPosting.objects.get(transaction=transaction)
    assert (posting.status, posting.attempts, posting.ehr_reference, posting.error_message) == (
        EhrPostingStatus.POSTED, 1, str(posting.public_id).replace("-", "")[:20], "",
    )
    assert posting.posted_at is not None and posting.next_attempt_at is None and posting.claimed_until is None
    assert posting_audits(transaction) == [(AuditAction.EHR_POSTING_POSTED, ActorType.SYSTEM, CollectionRule.EHR_POSTING, "")]
    [filed] = ehr.payments.values()
    assert (filed.patient_id, filed.amount) == ("p-17", "-25.00&USD")
    # A second delivery of the task sends nothing.
    ehr_posting_send(posting_id=posting.pk)
    assert len(ehr.received) == 1


def test_an_ae_fails_in_the_ehrs_words_and_is_retried_with_backoff_until_aa(organization, ehr):
    ehr.script = ["AE", "AE"]
    hl7_posting_connection(organization, ehr)
    before = timezone.now()
    transaction = paid(organization)  # the first send, by the task its commit queued

    posting = EhrPosting.objects.get(transaction=transaction)
    assert posting.status == EhrPostingStatus.FAILED
    assert posting.error_message == "The EHR answered AE (error): Patient account is closed."
    # The first retry waits about a minute (with jitter).
    assert before + datetime.timedelta(seconds=45) < posting.next_attempt_at < before + datetime.timedelta(seconds=75)
    # Not due yet: nothing is sent.
    ehr_posting_send(posting_id=posting.pk)
    assert len(ehr.received) == 1

    due_now(posting)
    ehr_posting_send(posting_id=posting.pk)
    posting.refresh_from_db()
    assert (posting.status, posting.attempts) == (EhrPostingStatus.FAILED, 2)
    assert posting.next_attempt_at > timezone.now() + datetime.timedelta(seconds=90)  # doubled

    due_now(posting)
    ehr_posting_send(posting_id=posting.pk)
    posting.refresh_from_db()
    assert (posting.status, posting.attempts, posting.error_message) == (EhrPostingStatus.POSTED, 3, "")
    # The failure is on the timeline once (not once per retry), then the posting.
    assert [row[0] for row in posting_audits(transaction)] == [AuditAction.EHR_POSTING_FAILED, AuditAction.EHR_POSTING_POSTED]
    assert posting_audits(transaction)[0][3] == "The EHR answered AE (error): Patient account is closed."
    assert len(ehr.payments) == 1


def test_after_the_last_attempt_only_staff_can_send_it(organization, ehr, settings):
    settings.EHR_POSTING_MAX_ATTEMPTS = 2
    ehr.default = "drop"
    hl7_posting_connection(organization, ehr)
    posting = EhrPosting.objects.get(transaction=paid(organization))  # attempt 1, on commit

    assert (posting.status, posting.next_attempt_at is not None) == (EhrPostingStatus.PENDING, True)
    due_now(posting)
    ehr_posting_send(posting_id=posting.pk)

    posting.refresh_from_db()
    assert posting.status == EhrPostingStatus.FAILED
    assert posting.next_attempt_at is None
    assert posting.error_message.startswith("No answer after 2 attempts: The EHR closed the connection before acknowledging.")
    assert ehr_postings_sweep(now=timezone.now() + datetime.timedelta(days=1)) == 0


@pytest.mark.reliability
def test_an_ack_lost_five_times_leaves_the_ehr_holding_one_payment(organization, ehr):
    """The EHR files the DFT^P03 each time but its ACK is lost on the way back, five times; the
    sixth send is acknowledged. Every send carries the posting's own id as MSH-10 (the control id)
    and FT1-2 (the transaction id): the EHR recognizes sends 2 to 6 as the message it already
    filed and acknowledges them without filing a second payment."""
    ehr.script = ["drop"] * 5
    hl7_posting_connection(organization, ehr)
    transaction = paid(organization)  # attempt 1, by the task its commit queued
    posting = EhrPosting.objects.get(transaction=transaction)

    for attempt in range(1, 6):
        if attempt > 1:
            ehr_posting_send(posting_id=posting.pk)
        posting.refresh_from_db()
        assert (posting.status, posting.attempts) == (EhrPostingStatus.PENDING, attempt)
        assert posting.error_message == "The EHR closed the connection before acknowledging."
        due_now(posting)
    ehr_posting_send(posting_id=posting.pk)

    posting.refresh_from_db()
    assert (posting.status, posting.attempts) == (EhrPostingStatus.POSTED, 6)
    assert len(ehr.received) == 6
    assert len(set(ehr.received)) == 1  # the same message, byte for byte, every time
    assert list(ehr.payments) == [str(posting.public_id).replace("-", "")[:20]]
    assert [row[0] for row in posting_audits(transaction)] == [AuditAction.EHR_POSTING_POSTED]


@pytest.mark.reliability
def test_an_answer_lost_five_times_leaves_the_fhir_server_holding_one_payment(organization):
    """FHIR: the server creates the PaymentReconciliation each time, but its answer is held past
    LumaPay's timeout, five times. Every send is a conditional create on the same identifier
    (``If-None-Exist: identifier=<system>|<posting id>``): the server finds the one it made and
    makes no other."""
    fhir = fhir_test_server_start()
    try:
        EhrConnection.objects.create(
            organization=organization, name="Clinic EHR", kind=EhrConnectionKind.FHIR, base_url=fhir.base_url,
            options={ConnectionOption.POSTING_ENABLED: True, "timeout_seconds": 0.5},
        )
        fault = fhir.proxy.fail("/PaymentReconciliation", delay_seconds=1.0, times=5)
        posting = EhrPosting.objects.get(transaction=paid(organization))  # attempt 1, on commit

        for attempt in range(1, 6):
            if attempt > 1:
                ehr_posting_send(posting_id=posting.pk)
            posting.refresh_from_db()
            assert (posting.status, posting.attempts) == (EhrPostingStatus.PENDING, attempt)
            due_now(posting)
        assert fault.hits == 5
        ehr_posting_send(posting_id=posting.pk)

        posting.refresh_from_db()
        assert posting.status == EhrPostingStatus.POSTED
        import requests

        bundle = requests.get(
            f"{fhir.local_url}/PaymentReconciliation",
            params={"identifier": f"https://lumapay.com/fhir/ehr-posting|{posting.public_id}"}, timeout=30,
        ).json()
        assert bundle["total"] == 1
        assert posting.ehr_reference == f"PaymentReconciliation/{bundle['entry'][0]['resource']['id']}"
    finally:
        fhir_test_server_stop(fhir)


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_post_once(ehr):
    """Two workers get the same posting's task at the same moment (a redelivery, the sweep beside
    the task): the lease lets one send; the other finds it claimed and sends nothing."""
    from tests.factories import OrganizationFactory

    organization = OrganizationFactory()
    ehr.script = ["AE"]  # the send on commit is refused; the retry is what the two workers race for
    hl7_posting_connection(organization, ehr)
    posting = EhrPosting.objects.get(transaction=paid(organization))
    assert posting.status == EhrPostingStatus.FAILED
    due_now(posting)
    ehr.ack_delay_seconds = 1.0
    start = threading.Barrier(2)
    results = []

    def worker():
        try:
            start.wait()
            results.append(ehr_posting_send(posting_id=posting.pk).status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    posting.refresh_from_db()
    assert (posting.status, posting.attempts) == (EhrPostingStatus.POSTED, 2)
    assert len(ehr.received) == 2  # the refused send, then one of the two workers'
    assert len(ehr.payments) == 1
    # The other worker found the row claimed and left it alone.
    assert sorted(results) == [EhrPostingStatus.FAILED, EhrPostingStatus.POSTED]


# -- the daily posting file ----------------------------------------------------------------------


def test_the_daily_posting_file_of_an_upload_only_organization(organization, manager, settings):
    organization.timezone = "America/Chicago"
    organization.save(update_fields=["timezone"])
    transaction = paid(organization, amount_cents=12345)
    transaction.patient.first_name = "=HYPERLINK(\"http://evil\")"
    transaction.patient.save(update_fields=["first_name"])
    refund_create(organization=organization, actor=manager, transaction=transaction, amount_cents=2345, reason="Overpaid")
    charge = TransactionEvent.objects.get(transaction=transaction, kind=Kind.CHARGE_SUCCEEDED)
    import zoneinfo

    zone = zoneinfo.ZoneInfo("America/Chicago")
    local = charge.created_at.astimezone(zone)

    posting_file = ehr_posting_file(organization=organization, actor=manager, day=local.date(), zone=zone)

    rows = list(csv.reader(io.StringIO(posting_file.content.decode("utf-8-sig"))))
    assert rows[0][:6] == ["Date", "Time", "Kind", "Amount", "Currency", "Patient EHR id"]
    payment, refund = rows[1], rows[2]
    assert payment[:6] == [local.date().isoformat(), local.strftime("%H:%M:%S"), "Payment", "123.45", "USD", "p-17"]
    assert refund[2:5] == ["Refund", "-23.45", "USD"]
    assert payment[6] == f"'=HYPERLINK(\"http://evil\") {transaction.patient.last_name}"  # kept as text
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    assert (payment[7], payment[9]) == ("a-17", "loc-downtown")
    assert posting_file.rows == 2 and posting_file.filename == f"ehr-postings-{local.date().isoformat()}.csv"
    assert not EhrPosting.objects.exists()
    audit = AuditEvent.objects.get(action=AuditAction.EHR_POSTING_FILE_DOWNLOADED)
    assert (audit.actor_user, audit.changes) == (manager, {"day": local.date().isoformat(), "rows": 2})


def test_the_posting_file_is_refused_to_staff(organization, staff_user):
    from org_profile.access import AccessDenied
    import zoneinfo

    with pytest.raises(AccessDenied):
        ehr_posting_file(organization=organization, actor=staff_user, day=datetime.date(2026, 11, 29), zone=zoneinfo.ZoneInfo("UTC"))
    assert not AuditEvent.objects.filter(action=AuditAction.EHR_POSTING_FILE_DOWNLOADED).exists()


def test_the_beat_sweep_sends_a_posting_whose_task_was_lost(organization, ehr, settings):
    from django.test import TestCase

    from transactions.tasks import ehr_postings_sweep as sweep_task

    ehr.script = ["AE"]
    hl7_posting_connection(organization, ehr)
    posting = EhrPosting.objects.get(transaction=paid(organization))
    # Due a while ago, and no task is coming for it (lost with a broker restart).
    EhrPosting.objects.filter(pk=posting.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(minutes=5))

    with TestCase.captureOnCommitCallbacks(execute=True):
        queued = sweep_task.apply().get()

    assert queued == 1
    posting.refresh_from_db()
    assert (posting.status, posting.attempts) == (EhrPostingStatus.POSTED, 2)
    assert settings.CELERY_BEAT_SCHEDULE["ehr-postings-sweep"] == {"task": "transactions.tasks.ehr_postings_sweep", "schedule": 60}
    # Posted: the next sweep leaves it alone.
    assert sweep_task.apply().get() == 0


def test_a_send_whose_lease_ran_out_does_not_overwrite_the_newer_sends_row(organization, ehr):
    """A worker that stalled past its lease comes back with "no answer" after a newer send claimed
    the row: the row stays the newer send's."""
    from ehr_sync.posting import PostingOutcome
    from transactions.services.ehr_postings import _outcome_record

    ehr.script = ["AE"]
    hl7_posting_connection(organization, ehr)
    posting = EhrPosting.objects.get(transaction=paid(organization))
    EhrPosting.objects.filter(pk=posting.pk).update(attempts=3, claimed_until=timezone.now() + datetime.timedelta(minutes=2))
    before = EhrPosting.objects.filter(pk=posting.pk).values().get()

    _outcome_record(posting.pk, 2, PostingOutcome(PostingOutcome.UNANSWERED, "The EHR did not acknowledge within 30 s."))

    assert EhrPosting.objects.filter(pk=posting.pk).values().get() == before


def test_a_posting_owed_before_posting_was_turned_off_is_not_sent(organization, ehr):
    ehr.script = ["AE"]
    connection = hl7_posting_connection(organization, ehr)
    posting = EhrPosting.objects.get(transaction=paid(organization))
    connection.options[ConnectionOption.POSTING_ENABLED] = False
    connection.save(update_fields=["options"])
    due_now(posting)

    ehr_posting_send(posting_id=posting.pk)

    posting.refresh_from_db()
    assert (posting.status, posting.next_attempt_at) == (EhrPostingStatus.FAILED, None)
    assert posting.error_message == "Posting is off on the connection “Clinic HL7”: turn it on, then press Post again."
    assert len(ehr.received) == 1  # the refused send before it was turned off, nothing since


def test_a_payment_late_in_the_clinics_evening_is_filed_on_the_clinics_day(organization, ehr):
    """A payment at 23:30 in New York is 04:30 the next day in UTC: the EHR files it (FT1-4, FHIR
    paymentDate) on the clinic's day, as the daily posting file does."""
    from transactions.services.ehr_postings import posting_record

    organization.timezone = "America/New_York"
    organization.save(update_fields=["timezone"])
    hl7_posting_connection(organization, ehr)
    transaction = paid(organization)
    posting = EhrPosting.objects.get(transaction=transaction)
    evening = datetime.datetime(2026, 11, 30, 4, 30, tzinfo=datetime.UTC)  # 23:30 on the 29th in New York
    posting.event.created_at = evening

    record = posting_record(posting)

    assert record.occurred_at == evening
    assert record.occurred_at.date() == datetime.date(2026, 11, 29)
