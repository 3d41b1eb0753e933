"""What every source of EHR data hands the importer (``ehr_sync.importer``): one shape per kind of
record, whatever brought it (a FHIR sync, an HL7 v2 message, an SFTP drop file, an upload).

Each record is keyed by the EHR's own id, unique within the organization, and carries the moment
the source last changed it (``source_updated_at``) and, where the source has one, its version
(FHIR ``meta.versionId``, HL7 ``MSH-7``/``MSH-10``). The importer keeps the newest: a record older
than what is stored never overwrites it.

``reference`` says where the record came from in the source's own terms ("row 7",
"Patient/8f2c…/_history/3", "message 0042 (ADT^A08)"), so a rejection points at it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PatientRecord:
    external_id: str
    first_name: str
    last_name: str
    date_of_birth: datetime.date | None
    source_updated_at: datetime.datetime
    reference: str
    email: str = ""
    mobile_phone: str = ""
    preferred_language: str = "en"
    # None: the source does not say (keep what is stored); True/False: what the patient chose.
    sms_consent: bool | None = None
    version: str = ""


@dataclass(frozen=True, slots=True)
class AppointmentRecord:
    external_id: str
    patient_external_id: str
    starts_at: datetime.datetime | None
    status: str  # one of ehr_sync.enums.AppointmentStatus
    source_updated_at: datetime.datetime
    reference: str
    # The EHR's id or name of the place; matched to a Location by its EHR id, then by its name.
    location: str = ""
    provider_name: str = ""
    # None: the source says nothing about the copay (keep what is stored).
    copay_cents: int | None = None
    currency: str = "usd"
    version: str = ""


@dataclass(frozen=True, slots=True)
class CopayRecord:
    """The copay due for one appointment (an upload's balances/copays file, a FHIR Coverage)."""

    appointment_external_id: str
    copay_cents: int | None
    source_updated_at: datetime.datetime
    reference: str
    currency: str = "usd"


@dataclass(frozen=True, slots=True)
class BalanceRecord:
    """What the patient owes, as of ``source_updated_at``."""

    patient_external_id: str
    amount_due_cents: int | None
    source_updated_at: datetime.datetime
    reference: str
    currency: str = "usd"


@dataclass(slots=True)
class RecordBatch:
    """Records to import together. Patients first, so appointments and balances in the same batch
    find them."""

    patients: list[PatientRecord] = field(default_factory=list)
    appointments: list[AppointmentRecord] = field(default_factory=list)
    copays: list[CopayRecord] = field(default_factory=list)
    balances: list[BalanceRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.patients) + len(self.appointments) + len(self.copays) + len(self.balances)


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """Why one record was rejected: which record, which field, the value as the source wrote it,
    and the reason in words a clinic's staff can act on."""

    kind: str  # "patient", "appointment", "copay", "balance"
    reference: str
    field: str
    value: str
    reason: str
