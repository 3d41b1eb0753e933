"""Reads of the patient mirror, always within one organization.

Patients are organization-wide (every member may find any patient). What was asked of and paid by
a patient is read by transactions (transactions/selectors/patients.py), above this app.
"""

from __future__ import annotations

import re

from django.db.models import F, Lookup, Q, QuerySet

from lumapay.tenant_rls import owner_query
from org_profile.models import Organization

from .models import Appointment, Balance, Patient
from .phone_numbers import phone_digits
from .search import ContainsUnaccented, patient_search_text

HUB_PAGE_SIZE = 25
# A Hub search paginates the ids it found (``patient_ids_search``); one that finds more than this
# (a single letter) pages through the search itself instead.
HUB_SEARCH_IDS_MAX = 20_000
# Words of a name search: more than this is someone pasting a paragraph.
_MAX_SEARCH_TERMS = 5
_LOOKS_LIKE_A_NUMBER = re.compile(r"[\d\s().+\-]+")
_WORD_SEPARATORS = re.compile(r"[\s,]+")


class ContainsIgnoringCase(Lookup):
    """``column ILIKE '%text%'`` (Django's ``icontains`` compiles to ``UPPER(column) LIKE UPPER(...)``).
    Used as an expression, never registered on a field."""

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
    """What a patient search means, decided by what was typed. The one definition the Hub and the
    dashboard's patient filter share.

    - an e-mail address (has "@"): the e-mail, ignoring case (trigram index ``patient_email_trgm``);
    - digits and phone punctuation: the external EHR id, or the mobile phone by its digits;
    - anything else, as "First Last", "Last, First" or parts of either: every word (commas split
      words too) must appear in the first name, last name or external EHR id, ignoring case and
      accents ("garcia" finds García, "Garcia, Jorge" finds Jorge García), through the trigram
      index on ``patient_search_text()`` (ehr_sync/search.py).
    """
    query = query.strip()
    if not query:
        return Q()
    if "@" in query:
        return Q(ContainsIgnoringCase(F("email"), contains_pattern(query)))
    if _LOOKS_LIKE_A_NUMBER.fullmatch(query):
        # The EHR id through the searched text (names hold no digits), so the trigram index serves it.
        condition = ContainsUnaccented(patient_search_text(), contains_pattern(query))
        digits = phone_digits(query)
        if len(digits) >= 4:
            condition = Q(condition) | Q(mobile_phone__contains=digits)
        return Q(condition)
    condition = Q()
    text = patient_search_text()
    for term in _WORD_SEPARATORS.split(query)[:_MAX_SEARCH_TERMS]:
        if term:
            condition &= Q(ContainsUnaccented(text, contains_pattern(term)))
    return condition


def patients_search(*, organization: Organization, query: str = "") -> QuerySet[Patient]:
    """The organization's patients matching a search, by last name then first name. Under
    row-level security a search (``ILIKE``) cannot use its trigram index: pages that search
    find the ids with ``patient_ids_search`` first."""
    return (
        Patient.objects.filter(organization=organization)
        .filter(patient_search_condition(query))
        .order_by("last_name", "first_name", "id")
    )


def patient_ids_search(*, organization: Organization, query: str, limit: int | None = None, ordered: bool = False) -> list[int]:
    """The ids of the organization's patients matching a search (at most ``limit``; by last
    name, first name and id when ``ordered``), found with the trigram indexes.

    Runs as the database owner (``owner_query``, lumapay/tenant_rls.py): under row-level
    security PostgreSQL does not use an index for ``ILIKE`` (not LEAKPROOF) and reads every
    patient of the clinic (150 ms instead of 5 for 200,000 patients). Safe: the query itself is
    filtered by ``organization`` (the request's own), and callers read what the ids point to
    again under row-level security (``patients_by_ids``, the dashboard's ``patient_id = ANY``)."""
    organization_id = organization.pk
    if organization_id is None:
        raise ValueError("A patient search needs its organization.")
    patients = Patient.objects.filter(organization_id=organization_id).filter(patient_search_condition(query))
    patients = patients.order_by("last_name", "first_name", "id") if ordered else patients.order_by()
    ids = patients.values_list("id", flat=True)
    if limit is not None:
        ids = ids[:limit]
    with owner_query():
        return list(ids)


def patients_by_ids(*, organization: Organization, ids: list[int]) -> list[Patient]:
    """The organization's patients with these ids, in the order given (under row-level security)."""
    found = {patient.pk: patient for patient in Patient.objects.filter(organization=organization, pk__in=ids)}
    return [found[pk] for pk in ids if pk in found]


def patient_get(*, organization: Organization, patient_id: int) -> Patient | None:
    """The patient, with the import run their details last came from (the profile says where)."""
    return (
        Patient.objects.filter(organization=organization, pk=patient_id)
        .select_related("last_import_run", "last_import_run__connection")
        .first()
    )


def patient_appointments(*, patient: Patient) -> QuerySet[Appointment]:
    """Newest first, with the location each was at."""
    return (
        Appointment.objects.filter(organization_id=patient.organization_id, patient=patient)
        .select_related("location")
        .order_by("-starts_at", "-id")
    )


def patient_balance(*, patient: Patient) -> Balance | None:
    return Balance.objects.filter(organization_id=patient.organization_id, patient=patient).first()

