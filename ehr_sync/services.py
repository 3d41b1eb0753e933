"""Writes to the patient mirror made by staff: adding and editing patients by hand, and recording
that someone viewed a patient's record (a PHI access).

Every change writes an audit event with the old and new values in the same database transaction.
Patient details are PHI: they go into audit events (which exist to record them), never into logs.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from lumapay.audit import actor_from, audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from org_profile.models import Organization

from .enums import PreferredLanguage
from .locks import patient_lock
from .models import Patient
from .phone_numbers import mobile_phone_normalize

# What staff can set on a patient; sms_consent_at follows sms_consent and is never set directly.
PATIENT_EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "email",
    "mobile_phone",
    "preferred_language",
    "sms_consent",
    "external_ehr_id",
)
_CREATED_AUDIT_FIELDS = (*PATIENT_EDITABLE_FIELDS, "sms_consent_at")
_EXTERNAL_ID_CONSTRAINT = "patient_external_id_unique_per_org"


def patient_create(
    *,
    organization: Organization,
    actor,
    first_name: str,
    last_name: str,
    date_of_birth: datetime.date,
    email: str = "",
    mobile_phone: str = "",
    preferred_language: str = PreferredLanguage.ENGLISH,
    sms_consent: bool = False,
    external_ehr_id: str = "",
) -> Patient:
    """Add a patient by hand. Consent to SMS is recorded with the moment it was given."""
    values = _patient_values_clean(
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
        email=email,
        mobile_phone=mobile_phone,
        preferred_language=preferred_language,
        sms_consent=sms_consent,
        external_ehr_id=external_ehr_id,
    )
    actor_type, actor_user = actor_from(actor)
    with transaction.atomic():
        patient = Patient(
            organization=organization,
            sms_consent_at=timezone.now() if values["sms_consent"] else None,
            **values,
        )
        _patient_save(patient, update_fields=None)
        audit_event_record(
            organization=organization,
            action=AuditAction.PATIENT_CREATED,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=patient,
            changes={field: [None, _audit_value(getattr(patient, field))] for field in _CREATED_AUDIT_FIELDS},
        )
    return patient


def patient_update(*, organization: Organization, actor, patient: Patient, data: Mapping[str, Any]) -> Patient:
    """Change some of a patient's details (``data`` holds only the fields to change).

    SMS consent: giving it records ``sms_consent_at``; withdrawing it clears it; a new mobile number
    while consent stands records the consent again, for that number. Nothing changed: no write.
    Returns the patient as stored (the row it locked); the ``patient`` passed in is left as it was.
    """
    unknown = set(data) - set(PATIENT_EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"patient_update cannot change {', '.join(sorted(unknown))}")
    if patient.organization_id != organization.pk:
        raise ApplicationError("This patient belongs to another organization.")
    actor_type, actor_user = actor_from(actor)

    with transaction.atomic():
        locked = patient_lock(patient_id=patient.pk)
        current = {field: getattr(locked, field) for field in PATIENT_EDITABLE_FIELDS}
        values = _patient_values_clean(**{**current, **data})
        changed = {field: value for field, value in values.items() if value != current[field]}

        if values["sms_consent"] and ("sms_consent" in changed or "mobile_phone" in changed):
            changed["sms_consent_at"] = timezone.now()
        elif not values["sms_consent"] and locked.sms_consent_at is not None:
            changed["sms_consent_at"] = None
        if not changed:
            return locked

        old = {field: _audit_value(getattr(locked, field)) for field in changed}
        for field, value in changed.items():
            setattr(locked, field, value)
        _patient_save(locked, update_fields=[*changed, "updated_at"])
        audit_event_record(
            organization=organization,
            action=AuditAction.PATIENT_UPDATED,
            actor_type=actor_type,
            actor_user=actor_user,
            patient=locked,
            changes={field: [old[field], _audit_value(value)] for field, value in changed.items()},
        )
    return locked


def patient_view_record(
    *, organization: Organization, actor, patient: Patient, ip_address: str | None = None
) -> AuditEvent:
    """Record that a staff member opened a patient's record: PHI access is always logged."""
    actor_type, actor_user = actor_from(actor)
    return audit_event_record(
        organization=organization,
        action=AuditAction.PATIENT_VIEWED,
        actor_type=actor_type,
        actor_user=actor_user,
        patient=patient,
        ip_address=ip_address,
    )


def _patient_values_clean(
    *,
    first_name: str,
    last_name: str,
    date_of_birth,
    email: str,
    mobile_phone: str,
    preferred_language: str,
    sms_consent: bool,
    external_ehr_id: str,
) -> dict[str, Any]:
    first_name = (first_name or "").strip()
    last_name = (last_name or "").strip()
    email = (email or "").strip()
    external_ehr_id = (external_ehr_id or "").strip()

    if not first_name:
        raise ApplicationError("Enter the patient's first name.", extra={"field": "first_name"})
    if not last_name:
        raise ApplicationError("Enter the patient's last name.", extra={"field": "last_name"})
    for field, value in (("first_name", first_name), ("last_name", last_name)):
        if len(value) > 100:
            raise ApplicationError("Names can be at most 100 characters long.", extra={"field": field})

    if not isinstance(date_of_birth, datetime.date) or isinstance(date_of_birth, datetime.datetime):
        raise ApplicationError("Enter the date of birth.", extra={"field": "date_of_birth"})
    if date_of_birth > timezone.localdate():
        raise ApplicationError("The date of birth cannot be in the future.", extra={"field": "date_of_birth"})
    if date_of_birth.year < 1900:
        raise ApplicationError("Check the date of birth: it is before 1900.", extra={"field": "date_of_birth"})

    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ApplicationError(
                f"“{email}” is not an e-mail address. Check it, or leave it empty.", extra={"field": "email"}
            ) from None
        if len(email) > 254:
            raise ApplicationError("E-mail addresses can be at most 254 characters long.", extra={"field": "email"})

    mobile_phone = mobile_phone_normalize(mobile_phone)

    if preferred_language not in PreferredLanguage.values:
        raise ApplicationError(
            "Choose English or Spanish as the preferred language.", extra={"field": "preferred_language"}
        )

    sms_consent = bool(sms_consent)
    if sms_consent and not mobile_phone:
        raise ApplicationError(
            "SMS consent needs a mobile phone number: enter the number the patient agreed to receive texts on.",
            extra={"field": "mobile_phone"},
        )

    if len(external_ehr_id) > 100:
        raise ApplicationError("The EHR id can be at most 100 characters long.", extra={"field": "external_ehr_id"})

    return {
        "first_name": first_name,
        "last_name": last_name,
        "date_of_birth": date_of_birth,
        "email": email,
        "mobile_phone": mobile_phone,
        "preferred_language": preferred_language,
        "sms_consent": sms_consent,
        "external_ehr_id": external_ehr_id,
    }


def _patient_save(patient: Patient, *, update_fields: list[str] | None) -> None:
    """Save, turning the database's "EHR id already taken" into a message for the form.

    The unique constraint decides (no check-then-insert), inside a savepoint so the caller's
    transaction survives long enough to roll back cleanly.
    """
    try:
        with transaction.atomic():
            patient.save(update_fields=update_fields)
    except IntegrityError as error:
        constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
        if constraint != _EXTERNAL_ID_CONSTRAINT:
            raise
        raise ApplicationError(
            f"Another patient in this organization already has the EHR id “{patient.external_ehr_id}”. "
            "Check the id, or open that patient's record instead.",
            extra={"field": "external_ehr_id"},
        ) from None


def _audit_value(value):
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
