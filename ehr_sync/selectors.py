"""Reads of the patient mirror, always within one organization.

Patients are organization-wide (every member may find any patient). What was asked of and paid by
a patient is read by transactions (transactions/selectors/patients.py), above this app.
"""

from __future__ import annotations

import re

from django.db.models import F, Lookup, Q, QuerySet

from org_profile.models import Organization

from .models import Appointment, Balance, Patient
from .phone_numbers import phone_digits

HUB_PAGE_SIZE = 25
# Words of a name search: more than this is someone pasting a paragraph.
_MAX_SEARCH_TERMS = 5
_LOOKS_LIKE_A_NUMBER = re.compile(r"[\d\s().+\-]+")


class ContainsIgnoringCase(Lookup):
    """``column ILIKE '%text%'``, which the trigram GIN index (gin_trgm_ops) can answer.

    Django's ``icontains`` compiles to ``UPPER(column) LIKE UPPER(...)`` on PostgreSQL, which
    that index cannot serve. Used as an expression, never registered on a field.
    """

    lookup_name = "contains_ignoring_case"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {rhs}", [*lhs_params, *rhs_params]


def contains_pattern(text: str) -> str:
    """An ILIKE pattern that finds ``text`` anywhere, with LIKE's wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def patient_search_condition(query: str) -> Q:
    """What a Hub search means, decided by what was typed.

    - an e-mail address (has "@"): the e-mail;
    - digits and phone punctuation: the external EHR id, or the mobile phone by its digits;
    - anything else: every word must appear in the first name, last name or external EHR id
      ("maria lop" finds Maria Lopez), through the trigram index.
    """
    query = query.strip()
    if not query:
        return Q()
    if "@" in query:
        return Q(ContainsIgnoringCase(F("email"), contains_pattern(query)))
    if _LOOKS_LIKE_A_NUMBER.fullmatch(query):
        condition = ContainsIgnoringCase(F("external_ehr_id"), contains_pattern(query))
        digits = phone_digits(query)
        if len(digits) >= 4:
            condition = Q(condition) | Q(mobile_phone__contains=digits)
        return Q(condition)
    condition = Q()
    for term in query.split()[:_MAX_SEARCH_TERMS]:
        pattern = contains_pattern(term)
        condition &= (
            Q(ContainsIgnoringCase(F("first_name"), pattern))
            | Q(ContainsIgnoringCase(F("last_name"), pattern))
            | Q(ContainsIgnoringCase(F("external_ehr_id"), pattern))
        )
    return condition


def patients_search(*, organization: Organization, query: str = "") -> QuerySet[Patient]:
    """The organization's patients matching a Hub search, by last name then first name."""
    return (
        Patient.objects.filter(organization=organization)
        .filter(patient_search_condition(query))
        .order_by("last_name", "first_name", "id")
    )


def patient_get(*, organization: Organization, patient_id: int) -> Patient | None:
    return Patient.objects.filter(organization=organization, pk=patient_id).first()


def patient_appointments(*, patient: Patient) -> QuerySet[Appointment]:
    """Newest first, with the location each was at."""
    return (
        Appointment.objects.filter(organization_id=patient.organization_id, patient=patient)
        .select_related("location")
        .order_by("-starts_at", "-id")
    )


def patient_balance(*, patient: Patient) -> Balance | None:
    return Balance.objects.filter(organization_id=patient.organization_id, patient=patient).first()

