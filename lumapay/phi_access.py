"""The PHI access log: every page and download that shows a patient's details records who, when,
which patients, from where (address and browser) and what page.

One ``PhiAccess`` per page view, one ``PhiAccessPatient`` per patient it showed. Views call
``phi_access_record`` with the patients they are about to show; the operators' admin does it
through ``PhiAccessAdminMixin`` (lumapay/admin.py). tests/lumapay/test_phi_access_crawl.py visits
every staff page that shows a patient and fails when one records nothing.

Like ``lumapay.audit`` this knows no app: patients are ids or objects with ``pk`` and
``organization_id``, or a queryset of patient ids (an export's thousands of patients are then
written by the database, ``INSERT … SELECT``, without passing through Python).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from .audit import client_ip
from .models import PhiAccess, PhiAccessPatient

USER_AGENT_MAX_LENGTH = 300

# What a page is called in "Who looked at this patient" and the access log's export.
PAGE_LABELS = {
    "patients:hub": _("Patient Hub"),
    "patients:profile": _("Patient profile"),
    "patients:edit": _("Patient edit form"),
    "patients:access_log": _("Who looked at this patient"),
    "patients:access_log_export": _("Access log export"),
    "transactions:dashboard": _("Transactions dashboard"),
    "transactions:transaction_detail": _("Transaction"),
    "transactions:transaction_refund": _("Transaction refund"),
    "transactions:transaction_receipt": _("Receipt (PDF)"),
    "transactions:export_create": _("Excel export"),
    "transactions:export_download": _("Excel export download"),
    "transactions:payment_request_new": _("Payment request form"),
    "transactions:payment_request_detail": _("Payment request"),
    "transactions:payment_request_cancel": _("Payment request cancellation"),
    "transactions:export_build": _("Excel export (background)"),
    "transactions:automation": _("Automation: what LumaPay did today and will do tomorrow"),
    "transactions:payment_plan_new": _("Payment plan form"),
    "transactions:ehr_posting_file_download": _("Daily EHR posting file download"),
    "ehr_connections:run_detail": _("EHR sync run: rejected records"),
    "uploads:detail": _("Upload Center: a file's problems"),
    "intake_forms:submission_detail": _("Intake form submission"),
    "intake_forms:submission_pdf": _("Intake form submission (PDF)"),
    "intake_forms:form_file": _("Intake form: a patient's uploaded file"),
}


def page_label(page: str) -> str:
    """The page's name for people; an operators' admin page as "Operators' admin: <url name>"."""
    if page in PAGE_LABELS:
        return str(PAGE_LABELS[page])
    if page.startswith("admin:"):
        return f"{_('Operators’ admin')}: {page.removeprefix('admin:').replace('_', ' ')}"
    return page


def phi_access_record(
    *,
    request,
    patients: Iterable[Any] | QuerySet,
    organization=None,
    page: str | None = None,
    is_operator: bool = False,
    shows_unlisted_records: bool = False,
) -> list[PhiAccess]:
    """Record that ``request``'s user was shown ``patients``: Patient objects, patient ids (with
    ``organization``), (organization id, patient id) pairs, or a queryset of patient ids
    (``values_list("patient_id", flat=True)``, with ``organization``).

    Objects of several organizations (an operators' admin list) make one access per organization.
    Nothing is recorded when there are no patients (an empty search), unless
    ``shows_unlisted_records``: the page shows patient data of records that are not (or not all)
    patients in LumaPay (an EHR sync's rejected records), so the look is recorded for
    ``organization`` with the patients it could name, if any. Returns the accesses.
    """
    page = page or _page_of(request)
    base = {
        "actor_user": request.user if getattr(request.user, "is_authenticated", False) else None,
        "is_operator": is_operator,
        "page": page[:100],
        # The path only: a query string can hold a search for a name, an e-mail or a phone.
        "path": request.path[:300],
        "method": request.method[:10],
        "ip_address": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH],
    }
    if isinstance(patients, QuerySet):
        if organization is None:
            raise ValueError("A queryset of patient ids needs its organization.")
        return [_record_query(base, organization, patients)]

    by_organization: dict[int, set[int]] = defaultdict(set)
    for patient in patients:
        if isinstance(patient, tuple):
            organization_id, patient_id = patient
            if patient_id is not None:
                by_organization[organization_id].add(patient_id)
        elif isinstance(patient, int):
            if organization is None:
                raise ValueError("Patient ids need their organization.")
            by_organization[organization.pk].add(patient)
        else:
            by_organization[patient.organization_id].add(patient.pk)
    if shows_unlisted_records:
        if organization is None:
            raise ValueError("Records that are not listed patients need their organization.")
        by_organization.setdefault(organization.pk, set())
    if len(by_organization) == 1:
        # A clinic's page: one statement, atomic by itself (its pages are read on every visit).
        [(organization_id, patient_ids)] = by_organization.items()
        return [_record_one(base, organization_id, sorted(patient_ids))]
    accesses = []
    with transaction.atomic():
        for organization_id, patient_ids in by_organization.items():
            access = PhiAccess.objects.create(organization_id=organization_id, patient_count=len(patient_ids), **base)
            PhiAccessPatient.objects.bulk_create(
                PhiAccessPatient(patient_id=patient_id, access=access, organization_id=organization_id)
                for patient_id in sorted(patient_ids)
            )
            accesses.append(access)
    return accesses


_ACCESS_COLUMNS = ("actor_user_id", "is_operator", "page", "path", "method", "ip_address", "user_agent")


def _record_one(base: dict, organization_id: int, patient_ids: list[int]) -> PhiAccess:
    """The access and its patients in one round trip: an INSERT of the access whose id a second
    INSERT, in the same statement, gives each patient's row. One statement is one transaction
    (or part of the caller's): both rows or neither. What ``PhiAccess.objects.create`` and a
    ``bulk_create`` in an atomic block did in four round trips (BEGIN, two INSERTs, COMMIT)."""
    access = PhiAccess(organization_id=organization_id, patient_count=len(patient_ids), **base)
    values = [getattr(access, column) for column in _ACCESS_COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH access AS ("
            f"  INSERT INTO {PhiAccess._meta.db_table} (organization_id, patient_count, accessed_at, "
            f"  {', '.join(_ACCESS_COLUMNS)})"
            f"  VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s) RETURNING id"
            f"), shown AS ("
            f"  INSERT INTO {PhiAccessPatient._meta.db_table} (patient_id, access_id, organization_id)"
            f"  SELECT patient.id, access.id, %s FROM access, unnest(%s::bigint[]) AS patient (id)"
            f") SELECT id FROM access",
            [organization_id, access.patient_count, access.accessed_at, *values, organization_id, patient_ids],
        )
        access.pk = cursor.fetchone()[0]
    access._state.adding = False
    access._state.db = connection.alias
    return access


def _record_query(base: dict, organization, patient_ids: QuerySet) -> PhiAccess:
    ids_sql, params = patient_ids.order_by().query.sql_with_params()
    table = PhiAccessPatient._meta.db_table
    with transaction.atomic():
        access = PhiAccess.objects.create(organization=organization, **base)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (patient_id, access_id, organization_id) "
                f"SELECT DISTINCT shown.id, %s::bigint, %s::bigint FROM ({ids_sql}) AS shown (id) "
                f"WHERE shown.id IS NOT NULL",
                [access.pk, organization.pk, *params],
            )
            access.patient_count = cursor.rowcount
        PhiAccess.objects.filter(pk=access.pk).update(patient_count=access.patient_count)
    return access


def _page_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None and match.view_name else request.path


def patient_accesses(*, organization, patient_id: int) -> QuerySet:
    """Who looked at one patient, newest first: ``PhiAccessPatient`` rows with their ``access``
    and its ``actor_user``, read backwards along the (patient, access) primary key's index."""
    return (
        PhiAccessPatient.objects.filter(patient_id=patient_id, organization=organization)
        .select_related("access", "access__actor_user")
        .order_by("-access_id")
    )
