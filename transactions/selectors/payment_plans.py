"""Reads of payment plans: a patient's plans with their schedules (the profile's panel), one plan
for a member, and the instalments due on a day (the Automation page)."""

from __future__ import annotations

import datetime

from django.db.models import Prefetch, QuerySet

from org_profile.models import Membership, Organization
from org_profile.selectors import scope_to_locations

from ..enums import InstalmentStatus
from ..models import PaymentPlan, PaymentPlanAttempt, PaymentPlanInstalment


def payment_plans_of_patient(*, membership: Membership, patient) -> QuerySet[PaymentPlan]:
    """The patient's plans the member may see (a sub-account user: those of their locations), newest
    first, each with its instalments (and each instalment's attempts and their transactions)
    prefetched: three queries whatever the count."""
    plans = scope_to_locations(PaymentPlan.objects.filter(organization=membership.organization, patient=patient), membership=membership)
    return (
        plans
        .select_related("saved_card", "created_by", "cancelled_by", "location")
        .prefetch_related(
            Prefetch(
                "instalments",
                queryset=PaymentPlanInstalment.objects.order_by("number").prefetch_related(
                    Prefetch(
                        "charge_attempts",
                        queryset=PaymentPlanAttempt.objects.select_related("transaction").order_by("number"),
                    )
                ),
            )
        )
        .order_by("-created_at", "-id")
    )


def payment_plan_get(*, membership: Membership, pk: int) -> PaymentPlan | None:
    """A plan of the member's organization, at one of their locations (None otherwise: a 404)."""
    return (
        scope_to_locations(PaymentPlan.objects.filter(organization=membership.organization, pk=pk), membership=membership)
        .select_related("organization", "patient", "location", "saved_card")
        .first()
    )


def plan_instalments_due_on(*, organization: Organization, day: datetime.date) -> QuerySet[PaymentPlanInstalment]:
    """The instalments of ``organization`` that LumaPay charges (or tries again) on ``day``, a date
    in the clinic's time zone, for the Automation page: scheduled ones due that day, and declined
    ones whose retry falls on it. Only plans still active; cancelled, paid and needing-staff
    instalments are not charged by anyone. Ordered by when they are charged."""
    import zoneinfo

    zone = zoneinfo.ZoneInfo(organization.timezone)
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
    end = start + datetime.timedelta(days=1)
    return (
        PaymentPlanInstalment.objects.filter(
            organization=organization,
            plan__status="active",
            status__in=[InstalmentStatus.SCHEDULED, InstalmentStatus.RETRYING, InstalmentStatus.CHARGING],
            next_attempt_at__gte=start,
            next_attempt_at__lt=end,
        )
        .select_related("plan", "plan__patient", "plan__saved_card")
        .order_by("next_attempt_at", "pk")
    )
