"""The one importer (ehr_sync/importer.py): idempotent, newest wins, nothing half-written, every
record accounted for. Every source (FHIR, HL7, SFTP, uploads) goes through these same rules."""

import datetime

import pytest

from ehr_sync.enums import AppointmentStatus, ImportRunStatus, ImportSource
from ehr_sync.importer import import_run_finish, import_run_start, records_check, records_import
from ehr_sync.models import Appointment, Balance, ImportRejection, Patient
from ehr_sync.records import AppointmentRecord, BalanceRecord, CopayRecord, PatientRecord, RecordBatch
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from tests.factories import LocationFactory, PatientFactory

T0 = datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(hours=1)
T2 = T0 + datetime.timedelta(hours=2)


def patient_record(external_id="P-1", *, at=T0, reference=None, **values):
    fields = {
        "first_name": "Ana",
        "last_name": "García",
        "date_of_birth": datetime.date(1984, 3, 9),
        "email": "ana@example.org",
        "mobile_phone": "(555) 555-0134",
        "preferred_language": "es",
        "sms_consent": True,
    }
    fields.update(values)
    return PatientRecord(
        external_id=external_id, source_updated_at=at, reference=reference or f"Patient/{external_id}", **fields
    )


def appointment_record(external_id="A-1", *, patient="P-1", at=T0, **values):
    fields = {
        "starts_at": T0 + datetime.timedelta(days=2),
        "status": AppointmentStatus.BOOKED,
        "location": "Downtown Clinic",
        "provider_name": "Dr. Kim",
        "copay_cents": 2500,
    }
    fields.update(values)
    return AppointmentRecord(
        external_id=external_id,
        patient_external_id=patient,
        source_updated_at=at,
        reference=f"Appointment/{external_id}",
        **fields,
    )


def run_for(organization, source=ImportSource.FHIR):
    return import_run_start(organization=organization, source=source, label="test")


def do_import(organization, batch, **kwargs):
    run = run_for(organization)
    outcome = records_import(run=run, batch=batch, **kwargs)
    return import_run_finish(run=run), outcome


@pytest.fixture
def downtown(organization):
    return LocationFactory(organization=organization, name="Downtown Clinic", ehr_location_id="loc-17")


def test_a_new_patient_and_appointment_are_created_and_counted(organization, downtown):
    run, outcome = do_import(
        organization, RecordBatch(patients=[patient_record()], appointments=[appointment_record()])
    )
    patient = Patient.objects.get(organization=organization, external_ehr_id="P-1")
    assert (patient.first_name, patient.mobile_phone, patient.preferred_language) == ("Ana", "+15555550134", "es")
    assert patient.sms_consent and patient.sms_consent_at == T0
    assert patient.ehr_updated_at == T0 and patient.last_import_run_id == run.pk
    appointment = Appointment.objects.get(external_ehr_id="A-1")
    assert (appointment.patient_id, appointment.location_id, appointment.copay_cents) == (patient.pk, downtown.pk, 2500)
    assert run.status == ImportRunStatus.SUCCEEDED
    assert (run.received, run.created, run.updated, run.unchanged, run.rejected) == (2, 2, 0, 0, 0)
    assert run.counts_by_kind["patient"]["created"] == 1
    assert AuditEvent.objects.filter(action=AuditAction.RECORDS_IMPORTED, changes__import_run=run.pk).exists()


def test_the_same_records_twice_change_nothing(organization, downtown):
    batch = RecordBatch(patients=[patient_record()], appointments=[appointment_record()])
    do_import(organization, batch)
    before = list(Patient.objects.values()) + list(Appointment.objects.values())
    run, _ = do_import(organization, batch)
    assert (run.created, run.updated, run.unchanged) == (0, 0, 2)
    # last_import_run stays the first run's: the second wrote nothing.
    assert list(Patient.objects.values()) + list(Appointment.objects.values()) == before


def test_a_newer_version_replaces_and_is_audited_with_old_and_new(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record()]))
    run, _ = do_import(organization, RecordBatch(patients=[patient_record(at=T1, email="ana.g@example.org")]))
    assert run.updated == 1
    patient = Patient.objects.get(external_ehr_id="P-1")
    assert patient.email == "ana.g@example.org" and patient.ehr_updated_at == T1
    event = AuditEvent.objects.get(action=AuditAction.PATIENT_UPDATED, patient=patient)
    assert event.changes["email"] == ["ana@example.org", "ana.g@example.org"]
    assert event.changes["import_run"] == run.pk


def test_an_older_version_never_overwrites_a_newer_one(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record(at=T2, email="new@example.org")]))
    run, _ = do_import(organization, RecordBatch(patients=[patient_record(at=T1, email="old@example.org")]))
    assert (run.older, run.updated) == (1, 0)
    assert Patient.objects.get(external_ehr_id="P-1").email == "new@example.org"


def test_an_unchanged_newer_version_still_moves_the_mark_so_an_older_one_stays_out(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record(at=T0)]))
    do_import(organization, RecordBatch(patients=[patient_record(at=T2)]))  # same content, newer
    run, _ = do_import(organization, RecordBatch(patients=[patient_record(at=T1, email="stale@example.org")]))
    assert run.older == 1
    assert Patient.objects.get(external_ehr_id="P-1").email == "ana@example.org"


def test_a_cancellation_and_a_reschedule_apply(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record()], appointments=[appointment_record()]))
    later = T0 + datetime.timedelta(days=5)
    run, _ = do_import(organization, RecordBatch(appointments=[appointment_record(at=T1, starts_at=later)]))
    assert run.updated == 1 and Appointment.objects.get().starts_at == later
    do_import(organization, RecordBatch(appointments=[appointment_record(at=T2, starts_at=later, status="cancelled")]))
    appointment = Appointment.objects.get()
    assert appointment.status == AppointmentStatus.CANCELLED
    event = AuditEvent.objects.filter(action=AuditAction.APPOINTMENT_CHANGED).latest("id")
    assert event.changes["status"] == ["booked", "cancelled"]


def test_a_rejected_record_leaves_no_trace_but_its_rejection(organization, downtown):
    run, outcome = do_import(
        organization,
        RecordBatch(
            patients=[
                patient_record("P-1"),
                patient_record("P-2", reference="row 3", email="not-an-email", date_of_birth=None),
            ],
            appointments=[appointment_record("A-2", patient="P-2")],
        ),
    )
    assert list(Patient.objects.values_list("external_ehr_id", flat=True)) == ["P-1"]
    assert not Appointment.objects.exists()
    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS
    assert (run.created, run.rejected) == (1, 2)
    rejections = {(r.reference, r.field): r for r in ImportRejection.objects.filter(run=run)}
    assert rejections["row 3", "email"].value == "not-an-email"
    assert "not an e-mail address" in rejections["row 3", "email"].reason
    assert ("row 3", "date_of_birth") in rejections
    assert "patient was rejected" in rejections["Appointment/A-2", "patient_external_id"].reason


def test_all_or_nothing_writes_nothing_when_one_record_is_rejected(organization, downtown):
    run, outcome = do_import(
        organization,
        RecordBatch(patients=[patient_record("P-1"), patient_record("P-2", first_name="")]),
        all_or_nothing=True,
    )
    assert not outcome.written
    assert not Patient.objects.exists()
    assert ImportRejection.objects.filter(run=run, field="first_name").count() == 1


def test_the_same_id_twice_at_the_same_moment_is_ambiguous_and_both_are_rejected(organization, downtown):
    run, outcome = do_import(
        organization,
        RecordBatch(patients=[patient_record("P-9", reference="row 2"), patient_record("P-9", reference="row 7")]),
    )
    assert not Patient.objects.exists()
    reasons = sorted(problem.reason for problem in outcome.problems)
    assert reasons == [
        "The id P-9 appears more than once (also row 2): keep one of them.",
        "The id P-9 appears more than once (also row 7): keep one of them.",
    ]


def test_the_same_id_at_different_moments_keeps_the_newest(organization, downtown):
    do_import(
        organization,
        RecordBatch(patients=[patient_record("P-9", at=T2, email="b@example.org"), patient_record("P-9", at=T1)]),
    )
    assert Patient.objects.get().email == "b@example.org"


def test_appointments_find_their_location_by_ehr_id_or_name_and_reject_an_unknown_one(organization, downtown):
    LocationFactory(organization=organization, name="Northside Clinic")
    _, outcome = do_import(
        organization,
        RecordBatch(
            patients=[patient_record()],
            appointments=[
                appointment_record("A-1", location="loc-17"),
                appointment_record("A-2", location="  northside   clinic "),
                appointment_record("A-3", location="Eastside"),
            ],
        ),
    )
    assert dict(Appointment.objects.values_list("external_ehr_id", "location__name")) == {
        "A-1": "Downtown Clinic",
        "A-2": "Northside Clinic",
    }
    assert [(p.reference, p.field, p.value) for p in outcome.problems] == [("Appointment/A-3", "location", "Eastside")]


def test_an_appointment_of_an_unknown_patient_is_rejected(organization, downtown):
    _, outcome = do_import(organization, RecordBatch(appointments=[appointment_record(patient="P-404")]))
    assert outcome.problems[0].reason == "No patient with this id: import the patient first (or in the same file)."


def test_copays_and_balances_arrive_and_keep_the_newest(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record()], appointments=[appointment_record(copay_cents=None)]))
    run, _ = do_import(
        organization,
        RecordBatch(
            copays=[CopayRecord(appointment_external_id="A-1", copay_cents=3000, source_updated_at=T1, reference="row 2")],
            balances=[BalanceRecord(patient_external_id="P-1", amount_due_cents=12050, source_updated_at=T1, reference="row 2")],
        ),
    )
    assert (run.created, run.updated) == (1, 1)
    assert Appointment.objects.get().copay_cents == 3000
    assert Balance.objects.get().amount_due_cents == 12050
    run, _ = do_import(
        organization,
        RecordBatch(
            balances=[BalanceRecord(patient_external_id="P-1", amount_due_cents=1, source_updated_at=T0, reference="x")]
        ),
    )
    assert run.older == 1 and Balance.objects.get().amount_due_cents == 12050


def test_negative_and_missing_amounts_are_rejected(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record()]))
    _, outcome = do_import(
        organization,
        RecordBatch(
            balances=[BalanceRecord(patient_external_id="P-1", amount_due_cents=-500, source_updated_at=T1, reference="row 2")]
        ),
    )
    assert outcome.problems[0].reason == "The balance cannot be negative."
    assert outcome.problems[0].value == "-5.00"
    assert not Balance.objects.exists()


def test_records_stay_inside_their_organization(organization, other_organization, downtown):
    PatientFactory(organization=other_organization, external_ehr_id="P-1", first_name="Other")
    do_import(organization, RecordBatch(patients=[patient_record()]))
    assert Patient.objects.get(organization=other_organization).first_name == "Other"
    assert Patient.objects.get(organization=organization).first_name == "Ana"


def test_withdrawn_consent_and_a_removed_number_stop_texts(organization, downtown):
    do_import(organization, RecordBatch(patients=[patient_record()]))
    do_import(organization, RecordBatch(patients=[patient_record(at=T1, mobile_phone="", sms_consent=None)]))
    patient = Patient.objects.get()
    assert (patient.mobile_phone, patient.sms_consent, patient.sms_consent_at) == ("", False, None)


def test_checking_writes_nothing(organization, downtown):
    valid, problems = records_check(
        organization=organization, batch=RecordBatch(patients=[patient_record(), patient_record("P-2", last_name="")])
    )
    assert [r.external_id for r in valid.patients] == ["P-1"] and len(problems) == 1
    assert not Patient.objects.exists()


def test_the_importer_works_under_row_level_security(organization, downtown, django_db_blocker):
    """Syncs and uploads run in the organization's scope (as lumapay_app, under row-level security),
    as every request and task does; the arrays, the ON CONFLICT and the audit events all pass."""
    from lumapay.tenant_rls import organization_scope

    with organization_scope(organization.pk):
        do_import(organization, RecordBatch(patients=[patient_record()], appointments=[appointment_record()]))
        run, _ = do_import(organization, RecordBatch(patients=[patient_record(at=T1, first_name="Anita")]))
    assert run.updated == 1
    assert Patient.objects.get().first_name == "Anita"
