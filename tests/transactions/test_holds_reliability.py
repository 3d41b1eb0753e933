"""Holds by rule under concurrency and failure, on real PostgreSQL with real threads: two hold
passes at once, a pass whose worker dies mid-hold and the pass after it, and two capture sweeps
racing staff's Check in. Whatever the interleaving: one hold per appointment, one capture per hold,
and the Sandbox processor never holds or captures twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from ehr_sync.enums import AppointmentStatus
from ehr_sync.models import Appointment
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from transactions.enums import CollectionRule, PaymentRequestKind, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.sandbox import SandboxGateway
from transactions.models import Transaction, TransactionEvent
from transactions.sandbox.models import SandboxCharge, SandboxPaymentIntent
from transactions.services import holds
from transactions.services.saved_cards import saved_card_charge

from ..factories import PatientFactory
from .holds_support import hold_rule_on, sandbox_card, visit

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def _run_at_once(*targets) -> list:
    """Run each target in its own thread (its own database connection), all released together.
    Returns what each returned or raised."""
    barrier = threading.Barrier(len(targets))
    outcomes: list = [None] * len(targets)

    def run(index, target):
        try:
            barrier.wait()
            outcomes[index] = target()
        except BaseException as error:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, target)) for index, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def _clinic_with_visits(organization, location, count: int):
    hold_rule_on(organization)
    appointments = []
    for _index in range(count):
        card = sandbox_card(organization, PatientFactory(organization=organization))
        appointments.append(visit(card, location, in_hours=6))
        appointments.append(visit(card, location, in_hours=8, copay_cents=1500))
    return appointments


def _assert_one_hold_each(appointments) -> None:
    for appointment in appointments:
        rows = list(Transaction.objects.filter(appointment=appointment))
        assert len(rows) == 1, f"appointment {appointment.pk}: {rows}"
        (hold,) = rows
        assert (hold.status, hold.automation_rule) == (TransactionStatus.AUTHORIZED, CollectionRule.HOLD_BEFORE_VISIT)
        assert SandboxPaymentIntent.objects.filter(client_reference=str(hold.pk)).count() == 1
    assert SandboxPaymentIntent.objects.filter(capture_method="manual").count() == len(appointments)


def test_two_hold_passes_at_once_hold_each_appointment_once(organization, location):
    appointments = _clinic_with_visits(organization, location, 4)

    outcomes = _run_at_once(holds.holds_place_before_visits, holds.holds_place_before_visits)

    assert all(isinstance(outcome, int) for outcome in outcomes), outcomes
    assert sum(outcomes) == len(appointments)
    _assert_one_hold_each(appointments)


def test_the_database_refuses_a_second_hold_even_when_two_callers_skip_the_pass(organization, location):
    """The passes' claim bypassed: two callers hold the same appointment's copay at once; the
    partial unique constraint lets one in."""
    (appointment, _other) = _clinic_with_visits(organization, location, 1)
    card = appointment.patient.saved_cards.get()

    def hold():
        return saved_card_charge(
            organization=organization, actor=None, saved_card=card, amount_cents=3000, kind=PaymentRequestKind.COPAY,
            billing_item="Office visit copay", location=location, appointment=appointment, hold_only=True,
            rule=CollectionRule.HOLD_BEFORE_VISIT,
        )  # fmt: skip

    outcomes = _run_at_once(hold, hold)

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["IntegrityError", "Transaction"]
    assert isinstance(next(o for o in outcomes if not isinstance(o, Transaction)), IntegrityError)
    assert Transaction.objects.filter(appointment=appointment).count() == 1
    assert SandboxPaymentIntent.objects.count() == 1


class WorkerKilled(BaseException):
    """Raised where a worker dies: nothing after that point runs, what was committed stays."""


def test_a_pass_killed_mid_hold_and_the_passes_after_it_leave_one_hold_each(organization, location, monkeypatch):
    appointments = _clinic_with_visits(organization, location, 3)
    real_charge = SandboxGateway.saved_card_charge
    killed = []

    def dies_after_the_processor_held(self, **kwargs):
        # The Sandbox holds the amount and answers; the worker dies before LumaPay records the
        # answer (a thread cannot be killed: raising here leaves the database as a kill would).
        answer = real_charge(self, **kwargs)
        if not killed:
            killed.append(kwargs["transaction"].pk)
            raise WorkerKilled()
        return answer

    monkeypatch.setattr(SandboxGateway, "saved_card_charge", dies_after_the_processor_held)
    (outcome,) = _run_at_once(holds.holds_place_before_visits)
    assert isinstance(outcome, WorkerKilled)
    stranded = Transaction.objects.get(pk=killed[0])
    assert (stranded.status, stranded.gateway_checkout_id) == (TransactionStatus.PENDING, "")
    assert Transaction.objects.count() == 1

    # the next passes (two at once, past the resume delay) finish the work, the stranded one
    # included, without holding anything twice at the processor
    monkeypatch.setattr(SandboxGateway, "saved_card_charge", real_charge)
    later = timezone.now() + timedelta(minutes=3)
    outcomes = _run_at_once(lambda: holds.holds_place_before_visits(now=later), lambda: holds.holds_place_before_visits(now=later))

    assert all(isinstance(outcome, int) for outcome in outcomes), outcomes
    _assert_one_hold_each(appointments)
    stranded.refresh_from_db()
    assert stranded.gateway_checkout_id == SandboxPaymentIntent.objects.get(client_reference=str(stranded.pk)).id


def test_two_capture_sweeps_and_staff_checking_in_at_once_capture_each_hold_once(organization, location, manager):
    appointments = _clinic_with_visits(organization, location, 3)
    holds.holds_place_before_visits()
    Appointment.objects.filter(pk__in=[a.pk for a in appointments]).update(status=AppointmentStatus.ARRIVED)

    for appointment in appointments:  # one race per hold: the sweeps would take every hold at once
        def staff_check_in(appointment=appointment):
            return holds.appointment_check_in(organization=organization, actor=manager, appointment=appointment)

        outcomes = _run_at_once(holds.holds_capture_at_check_in, holds.holds_capture_at_check_in, staff_check_in)
        assert not [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, ApplicationError)], outcomes

    for appointment in appointments:
        (hold,) = Transaction.objects.filter(appointment=appointment)
        assert (hold.status, hold.charged_cents, hold.hold_claimed_at) == (TransactionStatus.SUCCEEDED, appointment.copay_cents, None)
        assert TransactionEvent.objects.filter(transaction=hold, kind=Kind.CHARGE_SUCCEEDED).count() == 1
        assert AuditEvent.objects.filter(transaction=hold, action="authorization.captured").count() == 1
        assert SandboxCharge.objects.filter(payment_intent__client_reference=str(hold.pk), is_paid=True).count() == 1
