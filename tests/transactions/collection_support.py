"""Helpers for the collection rules' tests: rules turned on, EHR records driven through the real
importer (ehr_sync.importer.records_import), as a FHIR sync or an upload would."""

from __future__ import annotations

import datetime

from django.utils import timezone

from ehr_sync.enums import AppointmentStatus, ImportSource
from ehr_sync.importer import import_run_start, records_import
from ehr_sync.records import AppointmentRecord, BalanceRecord, PatientRecord, RecordBatch
from transactions.models import CollectionRules


def rules_on(organization, **values) -> CollectionRules:
    """The organization's rules with the copay rule on, no quiet hours unless given."""
    defaults = {
        "copay_request_enabled": True,
        "copay_request_hours_before": 48,
        "quiet_hours_start": datetime.time(0, 0),
        "quiet_hours_end": datetime.time(0, 0),
    }
    defaults.update(values)
    rules, _ = CollectionRules.objects.update_or_create(organization=organization, defaults=defaults)
    rules.refresh_from_db()
    return rules


def ehr_import(organization, *, appointments=(), balances=(), patients=(), source=ImportSource.FHIR):
    """Import records as a source would; returns the outcome."""
    run = import_run_start(organization=organization, source=source, label="test")
    return records_import(
        run=run,
        batch=RecordBatch(patients=list(patients), appointments=list(appointments), balances=list(balances)),
    )


def patient_record(external_id, *, at, email="maria@mail.example", language="en", phone="", sms_consent=None):
    return PatientRecord(
        external_id=external_id,
        first_name="Maria",
        last_name="Lopez",
        date_of_birth=datetime.date(1984, 3, 9),
        source_updated_at=at,
        reference=external_id,
        email=email,
        mobile_phone=phone,
        preferred_language=language,
        sms_consent=sms_consent,
    )


def appointment_record(external_id, *, patient, starts_at, at, status=AppointmentStatus.BOOKED, copay_cents=2500, location=""):
    return AppointmentRecord(
        external_id=external_id,
        patient_external_id=patient,
        starts_at=starts_at,
        status=status,
        source_updated_at=at,
        reference=external_id,
        location=location,
        provider_name="Dr. Alex Chen",
        copay_cents=copay_cents,
    )


def balance_record(patient, *, cents, at):
    return BalanceRecord(patient_external_id=patient, amount_due_cents=cents, source_updated_at=at, reference=patient)


def hours_from_now(hours: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(hours=hours)
