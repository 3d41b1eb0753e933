"""The outbox of e-mails and SMS a patient is owed: a receipt is owed with the charge that makes it
due, survives a database error while it is prepared, goes out once, and is given up with the reason
on the timeline only after repeated failures."""

import datetime
import socket

import psycopg
import pytest
from django.core import mail
from django.db import OperationalError, connection, transaction as db_transaction
from django.utils import timezone

from lumapay.models import AuditEvent
from transactions.enums import TransactionEventKind as Kind
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import PaymentRequestDelivery, Transaction, TransactionEvent
from transactions.sandbox import processor as sandbox_processor
from transactions.selectors.ledger import timeline_problems, transaction_timeline
from transactions.services import patient_messages
from transactions.services.ledger_facts import charge_fact_record
from transactions.services.patient_messages import DeliveryRetry, delivery_send, deliveries_resend_stuck

from .payments import card_pay, checkout_transaction


class _CauseFailed(Exception):
    pass


def _receipts(transaction=None):
    rows = PaymentRequestDelivery.objects.filter(purpose="receipt")
    return rows.filter(transaction=transaction) if transaction is not None else rows


def _due_now(delivery) -> None:
    """The backoff has passed (as if the clock had moved on)."""
    PaymentRequestDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - datetime.timedelta(minutes=2))


def _paid_with_receipt_owed(organization, capture):
    """A transaction paid at the Sandbox and recorded; its receipt owed, its task not run."""
    transaction = checkout_transaction(organization=organization)
    with capture(execute=False):
        sandbox_processor.card_submit(
            session_id=transaction.gateway_checkout_id, card_number="4242424242424242",
            expiry_month="12", expiry_year="2040", cvc="123",
        )
        charge_fact_record(transaction=transaction, fact=SandboxGateway().checkout_outcome(transaction=transaction))
    return transaction


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db
def test_the_receipt_is_owed_in_the_same_database_transaction_as_the_charge(organization, django_capture_on_commit_callbacks):
    transaction = checkout_transaction(organization=organization)
    gateway = SandboxGateway()
    with django_capture_on_commit_callbacks(execute=False):
        sandbox_processor.card_submit(
            session_id=transaction.gateway_checkout_id, card_number="4242424242424242",
            expiry_month="12", expiry_year="2040", cvc="123",
        )
    fact = gateway.checkout_outcome(transaction=transaction)

    # when the database transaction recording the charge rolls back, nothing is owed
    with pytest.raises(_CauseFailed), django_capture_on_commit_callbacks(execute=True) as queued:
        with db_transaction.atomic():
            charge_fact_record(transaction=transaction, fact=fact)
            raise _CauseFailed
    assert (_receipts().count(), len(queued), len(mail.outbox)) == (0, 0, 0)
    assert not TransactionEvent.objects.filter(kind=Kind.CHARGE_SUCCEEDED).exists()

    # when it commits, the receipt is owed by that commit, before any task has run
    with django_capture_on_commit_callbacks(execute=False) as queued:
        charge_fact_record(transaction=transaction, fact=fact)
    receipt = _receipts(transaction).get()
    assert (receipt.status, receipt.channel, receipt.destination, receipt.attempts) == (
        "queued", "email", transaction.patient.email, 0
    )
    assert mail.outbox == []

    # and the task queued after the commit sends it
    for run in queued:
        run()
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts, len(mail.outbox)) == ("sent", 1, 1)


@pytest.mark.django_db
def test_one_receipt_per_paid_transaction_even_when_the_charge_is_reported_again(organization):
    transaction = card_pay(checkout_transaction(organization=organization))  # the event, then the done page
    fact = SandboxGateway().checkout_outcome(transaction=transaction)

    charge_fact_record(transaction=transaction, fact=fact)  # a third report of the same charge
    patient_messages.receipt_email_send(transaction_id=transaction.pk)  # the earlier release's task
    deliveries_resend_stuck(now=timezone.now() + datetime.timedelta(hours=1))

    assert _receipts(transaction).count() == 1
    assert [message.to for message in mail.outbox] == [[transaction.patient.email]]
    assert AuditEvent.objects.filter(transaction=transaction, action="receipt.sent").count() == 1


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_a_connection_terminated_while_the_receipt_is_prepared_leaves_it_owed_and_a_later_attempt_sends_it(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    real_context = patient_messages.receipt_context
    terminated = []

    def connection_terminated_midway(*, transaction):
        # PostgreSQL ends this worker's connection (a restart, pg_terminate_backend) mid-render,
        # and the render's next read runs into it.
        if not terminated:
            pid = connection.cursor().connection.info.backend_pid
            with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            terminated.append(pid)
            transaction = Transaction.objects.select_related("organization", "location").get(pk=transaction.pk)
        return real_context(transaction=transaction)

    monkeypatch.setattr(patient_messages, "receipt_context", connection_terminated_midway)

    # when the charge is recorded and its receipt task, after the commit, runs into the
    # terminated connection
    transaction = card_pay(checkout_transaction(organization=organization))

    # then the payment stands, and the receipt is still owed, with why, due after a backoff
    receipt = _receipts(transaction).get()
    assert terminated and transaction.charged_cents == 5000
    assert (receipt.status, receipt.attempts, receipt.claimed_until) == ("queued", 1, None)
    assert receipt.error_message == "The database was unavailable while the message was prepared (OperationalError)."
    assert receipt.next_attempt_at > timezone.now()
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action="receipt.sent").exists()

    # when the retry is due (the task's own retry, or the beat sweep)
    _due_now(receipt)
    assert deliveries_resend_stuck() == 1

    # then it went out, once
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == ("sent", 2)
    assert [message.to for message in mail.outbox] == [[transaction.patient.email]]
    assert AuditEvent.objects.filter(transaction=transaction, action="receipt.sent").count() == 1


@pytest.mark.django_db
def test_an_error_in_the_render_leaves_the_receipt_owed_and_the_task_retries(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    def render_fails(*, transaction):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(patient_messages, "receipt_context", render_fails)
    transaction = _paid_with_receipt_owed(organization, django_capture_on_commit_callbacks)
    receipt = _receipts(transaction).get()

    with pytest.raises(DeliveryRetry) as retry:
        delivery_send(delivery_id=receipt.pk)

    receipt.refresh_from_db()
    assert 24 <= retry.value.countdown_seconds <= 36  # 30 s, with jitter
    assert (receipt.status, receipt.attempts, mail.outbox) == ("queued", 1, [])

    # A second sender while it is not due does nothing.
    assert delivery_send(delivery_id=receipt.pk).attempts == 1

    monkeypatch.undo()
    _due_now(receipt)
    assert delivery_send(delivery_id=receipt.pk).status == "sent"
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_receipt_sent_but_not_marked_is_marked_on_the_retry_without_sending_again(
    organization, monkeypatch, django_capture_on_commit_callbacks
):
    transaction = _paid_with_receipt_owed(organization, django_capture_on_commit_callbacks)
    receipt = _receipts(transaction).get()
    real_mark = patient_messages._mark_sent

    def database_gone(delivery_id, outcome):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(patient_messages, "_mark_sent", database_gone)
    with pytest.raises(DeliveryRetry) as retry:
        delivery_send(delivery_id=receipt.pk)
    assert len(mail.outbox) == 1

    monkeypatch.setattr(patient_messages, "_mark_sent", real_mark)
    delivery_send(delivery_id=receipt.pk, **retry.value.retry_kwargs)

    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts, len(mail.outbox)) == ("sent", 1, 1)
    assert receipt.provider_message_id == mail.outbox[0].extra_headers["Message-ID"]
    assert AuditEvent.objects.filter(transaction=transaction, action="receipt.sent").count() == 1


@pytest.mark.django_db
def test_a_row_another_sender_holds_is_left_to_it_and_taken_over_when_its_lease_runs_out(
    organization, django_capture_on_commit_callbacks
):
    transaction = _paid_with_receipt_owed(organization, django_capture_on_commit_callbacks)
    receipt = _receipts(transaction).get()
    # A sender claimed it and died (a killed worker) before sending.
    PaymentRequestDelivery.objects.filter(pk=receipt.pk).update(
        attempts=1, claimed_until=timezone.now() + datetime.timedelta(minutes=5)
    )

    assert delivery_send(delivery_id=receipt.pk).status == "queued"
    assert deliveries_resend_stuck(now=timezone.now() + datetime.timedelta(minutes=2)) == 0
    assert mail.outbox == []

    # Its lease runs out: the sweep sends it.
    PaymentRequestDelivery.objects.filter(pk=receipt.pk).update(
        claimed_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    _due_now(receipt)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resend_stuck() == 1
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts, len(mail.outbox)) == ("sent", 2, 1)


@pytest.mark.django_db
def test_a_receipt_whose_sender_was_killed_goes_out_at_the_first_sweep_after_its_lease(
    organization, settings, django_capture_on_commit_callbacks
):
    settings.PATIENT_MESSAGE_CLAIM_LEASE_SECONDS = 120
    transaction = _paid_with_receipt_owed(organization, django_capture_on_commit_callbacks)
    receipt = _receipts(transaction).get()
    claimed_at = timezone.now()
    # A sender claimed it and was killed mid-send (SIGKILL to its worker): nothing released the row.
    delivery, claimed = patient_messages._claim(receipt.pk)
    assert claimed
    assert delivery.claimed_until - claimed_at == pytest.approx(
        datetime.timedelta(seconds=120), abs=datetime.timedelta(seconds=5)
    )

    # While the lease runs, no other sender takes it.
    assert deliveries_resend_stuck(now=claimed_at + datetime.timedelta(seconds=110)) == 0

    # The first sweep after it sends it: no grace on top (no task is coming for a dead sender's row).
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert deliveries_resend_stuck(now=claimed_at + datetime.timedelta(seconds=130)) == 1
    PaymentRequestDelivery.objects.filter(pk=receipt.pk).update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    for run in queued:
        run()
    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts, len(mail.outbox)) == ("sent", 2, 1)
    assert AuditEvent.objects.filter(transaction=transaction, action="receipt.sent").count() == 1


@pytest.mark.django_db
def test_a_receipt_that_keeps_failing_is_given_up_with_the_reason_on_the_timeline(
    organization, settings, django_capture_on_commit_callbacks
):
    settings.PATIENT_MESSAGE_MAX_ATTEMPTS = 2
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 5
    transaction = _paid_with_receipt_owed(organization, django_capture_on_commit_callbacks)
    receipt = _receipts(transaction).get()

    for _attempt in range(2):
        _due_now(receipt)
        with pytest.raises(DeliveryRetry):
            delivery_send(delivery_id=receipt.pk)
    _due_now(receipt)
    delivery_send(delivery_id=receipt.pk)

    receipt.refresh_from_db()
    assert (receipt.status, receipt.attempts) == ("failed", 2)
    assert receipt.error_message.startswith("Given up after 2 attempts. The e-mail could not be sent: ")
    given_up = AuditEvent.objects.get(transaction=transaction, action="receipt.not_sent")
    assert given_up.changes == {"channel": "email", "attempts": 2, "reason": receipt.error_message}
    timeline = transaction_timeline(transaction=transaction)
    entry = next(entry for entry in timeline if entry.anchor == f"audit-{given_up.pk}")
    assert entry.is_error and entry.title == "Receipt could not be e-mailed"
    assert entry in timeline_problems(timeline)
    # Given up is final: the sweep leaves it alone.
    assert deliveries_resend_stuck(now=timezone.now() + datetime.timedelta(days=1)) == 0
