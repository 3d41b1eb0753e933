"""Checking FHIR resources in a pool of processes (ehr_sync/fhir_validation.py): the same verdicts, in
the same order, as checking them one by one in the sync's own process; a pool process that dies costs
nothing but time. And the ``= ANY`` lookup the sync and the importer read ids with."""

import datetime
import os
import signal

import pytest
from django.db.models import F

from ehr_sync import fhir_validation
from ehr_sync.demo_fhir_server import demo_appointment, demo_patient
from ehr_sync.lookups import AnyOf
from ehr_sync.models import Patient
from tests.factories import PatientFactory


def resources():
    """Seven patients and appointments, the third and the sixth breaking the R4 rules."""
    items = [
        demo_patient(f"p-{n}", first_name="Ana", last_name=f"Diaz{n}", birth_date=datetime.date(1980, 1, n))
        for n in range(1, 5)
    ]
    items[2]["birthDate"] = "1990-13-45"
    items += [
        demo_appointment(f"a-{n}", patient_id="p-1", starts_at=datetime.datetime(2026, 5, n, 15, tzinfo=datetime.UTC))
        for n in range(1, 4)
    ]
    items[5]["start"] = "tomorrow"
    for item in items:
        item["meta"] = {"versionId": "2", "lastUpdated": "2026-05-01T10:00:00.000Z"}
    return items


@pytest.fixture
def pooled(monkeypatch):
    """Every chunk, however small, goes to a pool of one process."""
    monkeypatch.setenv("FHIR_VALIDATION_PROCESSES", "1")
    monkeypatch.setattr(fhir_validation, "SMALL_CHUNK", 1)


def test_the_pool_gives_the_same_verdicts_in_the_same_order(pooled):
    items = resources()
    checker = fhir_validation.ResourceChecker(chunk_resources=2, chunks_ahead=1)
    seen = []
    for item in items:
        checker.add(item)
        seen += list(checker.ready())
    seen += list(checker.ready(everything=True))

    assert [resource["id"] for resource, _ in seen] == [item["id"] for item in items]
    assert [problem for _, problem in seen] == [fhir_validation.resource_problem(item) for item in items]
    problems = [problem for _, problem in seen if problem]
    assert [(p.kind, p.reference, p.field, p.value) for p in problems] == [
        ("patient", "Patient/p-3/_history/2", "birthDate", "1990-13-45"),
        ("appointment", "Appointment/a-2/_history/2", "start", "tomorrow"),
    ]
    assert "Not a valid FHIR R4 Patient" in problems[0].reason
    assert fhir_validation._pool is not None and fhir_validation._pool_pid == os.getpid()


def test_a_pool_process_that_dies_costs_only_time(pooled):
    pool = fhir_validation._pool_get()
    pool.submit(int, "1").result()  # started
    for process in list(pool._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
        try:
            process.join(5)
        except OSError:
            pass  # the pool's own thread reaped the killed process first (and closed its handle)
    items = resources()
    checker = fhir_validation.ResourceChecker(chunk_resources=3, chunks_ahead=0)
    for item in items:
        checker.add(item)
    seen = list(checker.ready(everything=True))

    assert [problem for _, problem in seen] == [fhir_validation.resource_problem(item) for item in items]
    assert fhir_validation._pool_get() is not pool


def test_without_a_pool_everything_is_checked_in_the_sync(monkeypatch):
    monkeypatch.setenv("FHIR_VALIDATION_PROCESSES", "0")
    items = resources()
    checker = fhir_validation.ResourceChecker(chunk_resources=100)
    for item in items:
        checker.add(item)
    seen = list(checker.ready(everything=True))

    assert [bool(problem) for _, problem in seen] == [False, False, True, False, False, True, False]


def test_any_of_reads_the_ids_given_and_none_for_an_empty_list(organization):
    first = PatientFactory(organization=organization, external_ehr_id="ehr-1")
    PatientFactory(organization=organization, external_ehr_id="ehr-2")
    third = PatientFactory(organization=organization, external_ehr_id="ehr-3")

    found = Patient.objects.filter(AnyOf(F("external_ehr_id"), {"ehr-1", "ehr-3", "ehr-9"}), organization=organization)

    assert sorted(found.values_list("pk", flat=True)) == sorted([first.pk, third.pk])
    assert not Patient.objects.filter(AnyOf(F("external_ehr_id"), []), organization=organization).exists()


def test_a_process_that_may_not_start_a_pool_checks_its_resources_itself(pooled, monkeypatch):
    # Faked: the real refusal comes from a daemonic process (a Celery prefork child) starting one,
    # which would take Celery's own pool to reproduce here.
    def refused(*args, **kwargs):
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(fhir_validation, "_pool", None)
    monkeypatch.setattr(fhir_validation, "ProcessPoolExecutor", lambda **kwargs: type("Pool", (), {"submit": refused, "shutdown": lambda self, **k: None})())
    monkeypatch.setattr(fhir_validation, "_pool_refused_pid", 0)
    items = resources()
    checker = fhir_validation.ResourceChecker(chunk_resources=3, chunks_ahead=0)
    for item in items:
        checker.add(item)
    seen = list(checker.ready(everything=True))

    assert [problem for _, problem in seen] == [fhir_validation.resource_problem(item) for item in items]
    assert fhir_validation._pool_get() is None


def _pool_in_a_daemon_child(answers):
    from ehr_sync import fhir_validation

    try:
        pool = fhir_validation._pool_get()
        answers.put(pool is not None and pool.submit(fhir_validation.resources_problems, [{"resourceType": "Patient", "id": "p-1"}]).result(timeout=60) == [None])
        answers.put([process.pid for process in pool._processes.values()])
    except Exception as error:  # noqa: BLE001 - reported to the test
        answers.put(repr(error))


def test_a_celery_worker_child_checks_in_its_pool_too():
    """Celery's prefork children are daemonic processes, which the standard library's
    multiprocessing forbids to have children: the pool is made with billiard's context (Celery's
    own), which allows it, so a sync run by a worker gets its pool. Checked in a daemonic billiard
    process, as a worker's child is."""
    import billiard

    answers = billiard.Queue()
    child = billiard.Process(target=_pool_in_a_daemon_child, args=(answers,), daemon=True)
    child.start()
    try:
        assert answers.get(timeout=90) is True
        checkers = answers.get(timeout=30)
    finally:
        child.join(timeout=30)
    # The child ended without shutting its pool down (as billiard's children do): its checker
    # process ends with it (PR_SET_PDEATHSIG), nothing is left behind.
    from tests.waiting import wait_until

    def gone(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert wait_until(lambda: all(gone(pid) for pid in checkers), timeout_seconds=30, interval_seconds=0.2)
