"""Reads of what was asked of and paid by one patient, for the payment panels of the patient profile.

Patients are organization-wide; their payment requests and transactions are limited to a
sub-account user's locations.
"""

from __future__ import annotations

from django.db.models import QuerySet

from ehr_sync.models import Appointment, Patient
from ehr_sync.selectors import patient_appointments
from org_profile.models import Membership
from org_profile.selectors import scope_to_locations

from ..models import Transaction


def patient_transactions(*, membership: Membership, patient: Patient) -> QuerySet[Transaction]:
    """The patient's transactions at the locations this member may see, newest first."""
    transactions = Transaction.objects.filter(organization_id=membership.organization_id, patient=patient)
    return scope_to_locations(transactions, membership=membership).select_related("location").order_by(
        "-created_at", "-id"
    )


def patient_requestable_appointments(*, membership: Membership, patient: Patient) -> QuerySet[Appointment]:
    """The patient's appointments this member may ask a copay for (those at their locations)."""
    return scope_to_locations(patient_appointments(patient=patient), membership=membership)
