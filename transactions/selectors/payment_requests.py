"""Reads of payment requests for staff pages: within the member's organization and, for a
sub-account user, their locations. Anything else is simply not found."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from ehr_sync.models import Patient
from lumapay.models import AuditEvent
from org_profile.models import Membership
from org_profile.selectors import scope_to_locations

from ..models import PaymentRequest, PaymentRequestDelivery


def payment_requests_visible(*, membership: Membership) -> QuerySet[PaymentRequest]:
    payment_requests = PaymentRequest.objects.filter(organization_id=membership.organization_id)
    return scope_to_locations(payment_requests, membership=membership).select_related(
        "patient", "location", "appointment", "created_by", "cancelled_by"
    )


def payment_request_get(*, membership: Membership, payment_request_id: int) -> PaymentRequest | None:
    return payment_requests_visible(membership=membership).filter(pk=payment_request_id).first()


def payment_requests_of_patient(*, membership: Membership, patient: Patient) -> QuerySet[PaymentRequest]:
    """Newest first, each with its deliveries (newest first)."""
    return (
        payment_requests_visible(membership=membership)
        .filter(patient=patient)
        .prefetch_related(
            Prefetch("deliveries", queryset=PaymentRequestDelivery.objects.order_by("-created_at", "-id"))
        )
        .order_by("-created_at", "-id")
    )


def payment_request_deliveries(*, payment_request: PaymentRequest) -> QuerySet[PaymentRequestDelivery]:
    return PaymentRequestDelivery.objects.filter(
        organization_id=payment_request.organization_id, payment_request=payment_request
    ).order_by("-created_at", "-id")


def payment_request_audit_events(*, payment_request: PaymentRequest) -> QuerySet[AuditEvent]:
    """The request's history, oldest first."""
    return (
        AuditEvent.objects.filter(organization_id=payment_request.organization_id, payment_request=payment_request)
        .select_related("actor_user")
        .order_by("created_at", "id")
    )
