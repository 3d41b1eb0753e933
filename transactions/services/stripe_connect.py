"""Stripe Connect: each clinic's connected account, its onboarding, and what Stripe says about it.

An administrator starts onboarding: the clinic's connected account is created if it has none
(with the organization's business information only, never a patient's), and Stripe's hosted
onboarding opens through an account link that comes back to the settings page. What Stripe last
said about the account (charges enabled, payouts enabled, what it still needs) is kept on the
Organization, from the page's refresh on return and from ``account.updated`` events; a report
older than the one stored never overwrites it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone as dt_timezone

from django.db.models import Q

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType, AuditEvent
from lumapay.task_queue import task_enqueue_on_commit
from org_profile.access import ADMINISTRATORS, AccessDenied, staff_access
from org_profile.enums import PaymentGateway
from org_profile.models import Organization, OrganizationPerson

from ..gateways.base import AccountFact
from ..gateways.stripe import StripeGateway, stripe_configured

logger = logging.getLogger(__name__)

_STATE_FIELDS = (
    "stripe_charges_enabled",
    "stripe_payouts_enabled",
    "stripe_details_submitted",
    "stripe_requirements_due",
    "stripe_disabled_reason",
    "stripe_requirements",
    "stripe_current_deadline",
)


def _require_administrator(*, organization: Organization, actor) -> None:
    refused = "Only administrators can manage the clinic's Stripe account."
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.NOT_A_MEMBER: refused, AccessDenied.ROLE: refused},
    )


def _state_of(fact: AccountFact) -> dict:
    return {
        "stripe_charges_enabled": fact.charges_enabled,
        "stripe_payouts_enabled": fact.payouts_enabled,
        "stripe_details_submitted": fact.details_submitted,
        "stripe_requirements_due": list(fact.requirements_due),
        "stripe_disabled_reason": fact.disabled_reason[:100],
        "stripe_requirements": {
            "currently_due": list(fact.currently_due),
            "past_due": list(fact.past_due),
            "eventually_due": list(fact.eventually_due),
        },
        "stripe_current_deadline": (
            datetime.fromtimestamp(fact.current_deadline, tz=dt_timezone.utc) if fact.current_deadline else None
        ),
    }


def _recorded(value):
    return value.isoformat() if isinstance(value, datetime) else value


def stripe_account_state_record(*, fact: AccountFact, actor_type: str = ActorType.GATEWAY) -> bool:
    """Keep what Stripe says about a clinic's account. Returns True when it changed anything.

    One conditional UPDATE: a report older than the one stored (events arrive in any order)
    changes nothing. An account that is no clinic of ours is logged and skipped.
    """
    organization = Organization.objects.filter(stripe_account_id=fact.account_id).first()
    if organization is None:
        logger.info("stripe account %s is no clinic of ours; its update is skipped", fact.account_id)
        return False
    if fact.disconnected:
        return stripe_account_disconnected_record(organization=organization, fact=fact)
    if organization.stripe_disconnected_at is not None:
        logger.info("stripe account %s was disconnected; its update is skipped", fact.account_id)
        return False
    as_of = datetime.fromtimestamp(fact.as_of, tz=dt_timezone.utc)
    before = {field: getattr(organization, field) for field in _STATE_FIELDS}
    state = _state_of(fact)
    updated = (
        Organization.objects.filter(pk=organization.pk, stripe_account_id=fact.account_id)
        .filter(Q(stripe_account_updated_at__isnull=True) | Q(stripe_account_updated_at__lte=as_of))
        .update(**state, stripe_account_updated_at=as_of)
    )
    if not updated:
        logger.info("stripe account %s: a newer report is already stored; this one is skipped", fact.account_id)
        return False
    changes = {
        field: [_recorded(before[field]), _recorded(state[field])] for field in _STATE_FIELDS if before[field] != state[field]
    }
    if changes:
        audit_event_record(
            organization=organization, action=AuditAction.STRIPE_ACCOUNT_UPDATED, actor_type=actor_type, changes=changes
        )
    return bool(changes)


# The task that tells the clinic's administrators their Stripe account was disconnected.
DISCONNECTED_NOTICE_TASK = "transactions.tasks.stripe_account_disconnected_notify"


def stripe_account_disconnected_record(*, organization: Organization, fact: AccountFact) -> bool:
    """The clinic disconnected LumaPay from its Stripe account (account.application.deauthorized):
    mark it disconnected (no charges, no pushes, no event listing until it is connected again),
    audit STRIPE_ACCOUNT_DISCONNECTED and e-mail the administrators; the staff pages show them a
    banner. A second delivery changes nothing."""
    now = datetime.fromtimestamp(fact.as_of, tz=dt_timezone.utc) if fact.as_of else datetime.now(tz=dt_timezone.utc)
    updated = Organization.objects.filter(
        pk=organization.pk, stripe_account_id=fact.account_id, stripe_disconnected_at__isnull=True
    ).update(stripe_disconnected_at=now, stripe_charges_enabled=False, stripe_payouts_enabled=False)
    if not updated:
        return False
    audit_event_record(
        organization=organization,
        action=AuditAction.STRIPE_ACCOUNT_DISCONNECTED,
        actor_type=ActorType.GATEWAY,
        changes={
            "stripe_account_id": fact.account_id,
            "stripe_charges_enabled": [organization.stripe_charges_enabled, False],
            "stripe_payouts_enabled": [organization.stripe_payouts_enabled, False],
        },
    )
    task_enqueue_on_commit(DISCONNECTED_NOTICE_TASK, organization.pk, robust=True)
    return True


def account_fact_apply(*, gateway: str, fact: AccountFact, gateway_event_id: str = "") -> bool:
    """Apply what a gateway event says about a clinic's account (``account.updated``)."""
    return stripe_account_state_record(fact=fact)


def account_fact_organization_id(*, gateway: str, fact: AccountFact) -> int | None:
    """The clinic whose account the fact is about (None: no clinic of ours)."""
    return Organization.objects.filter(stripe_account_id=fact.account_id).values_list("pk", flat=True).first()


def stripe_onboarding_start(*, organization: Organization, actor, return_url: str, refresh_url: str) -> str:
    """The address of Stripe's hosted onboarding for the clinic, creating its connected account
    first if it has none. Starting again resumes where the administrator left off."""
    _require_administrator(organization=organization, actor=actor)
    if not stripe_configured():
        raise ApplicationError("Stripe is not configured on this server: set STRIPE_SECRET_KEY.")
    gateway = StripeGateway()
    if not organization.stripe_connected:
        previous_account = organization.stripe_account_id
        fact = gateway.account_create(
            organization=organization, attempt=_attempt(organization, AuditAction.STRIPE_ACCOUNT_CREATED)
        )
        # A second administrator's click at the same moment gets the same account from Stripe
        # (same idempotency key); whichever request stores it first wins, the other reads it.
        # A clinic that disconnected its account connects a new one (the old one stays in the audit trail).
        stored = Organization.objects.filter(
            Q(stripe_account_id__isnull=True) | Q(stripe_disconnected_at__isnull=False), pk=organization.pk
        ).update(
            stripe_account_id=fact.account_id,
            stripe_disconnected_at=None,
            **_state_of(fact),
            stripe_account_updated_at=datetime.fromtimestamp(fact.as_of, tz=dt_timezone.utc),
        )
        organization.refresh_from_db()
        if stored:
            # The owners LumaPay sent belong to the old account: on the new one they are created
            # again (with everything on file) at their next push, not updated under stale ids.
            OrganizationPerson.objects.filter(organization=organization).exclude(stripe_person_id="").update(stripe_person_id="")
            audit_event_record(
                organization=organization,
                action=AuditAction.STRIPE_ACCOUNT_CREATED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes={"stripe_account_id": [previous_account, fact.account_id]},
            )
    url = gateway.account_link_create(
        organization=organization,
        account_id=organization.stripe_account_id,
        return_url=return_url,
        refresh_url=refresh_url,
        attempt=_attempt(organization, AuditAction.STRIPE_ONBOARDING_STARTED),
    )
    audit_event_record(
        organization=organization,
        action=AuditAction.STRIPE_ONBOARDING_STARTED,
        actor_type=ActorType.STAFF,
        actor_user=actor,
        changes={"stripe_account_id": organization.stripe_account_id},
    )
    return url


def _attempt(organization: Organization, done: AuditAction) -> int:
    """Which try this is of an onboarding step, for its Idempotency-Key: one more than the times it
    was done (its audit events). A click whose answer never came back was not recorded, so clicking
    again repeats that try and Stripe answers it with what it made the first time."""
    return AuditEvent.objects.filter(organization=organization, action=done).count() + 1


def stripe_account_refresh(*, organization: Organization, actor) -> Organization:
    """Ask Stripe for the account's state now (the administrator is back from onboarding)."""
    _require_administrator(organization=organization, actor=actor)
    if not organization.stripe_connected:
        return organization
    fact = StripeGateway().account_retrieve(account_id=organization.stripe_account_id)
    stripe_account_state_record(fact=fact, actor_type=ActorType.STAFF)
    organization.refresh_from_db()
    return organization


def stripe_payments_enable(*, organization: Organization, actor) -> Organization:
    """Take the clinic's payments through Stripe from now on (it has been using the Sandbox).

    Only once Stripe accepts charges on its account; checkouts already open finish where they began.
    """
    _require_administrator(organization=organization, actor=actor)
    organization.refresh_from_db()
    if organization.payment_gateway == PaymentGateway.STRIPE:
        return organization
    if not (organization.stripe_connected and organization.stripe_charges_enabled):
        raise ApplicationError("Stripe does not accept payments on this clinic's account yet: finish onboarding first.")
    old = organization.payment_gateway
    organization.payment_gateway = PaymentGateway.STRIPE
    organization.save(update_fields=["payment_gateway"])
    audit_event_record(
        organization=organization,
        action=AuditAction.ORGANIZATION_PAYMENT_GATEWAY_CHANGED,
        actor_type=ActorType.STAFF,
        actor_user=actor,
        changes={"payment_gateway": [old, PaymentGateway.STRIPE]},
    )
    return organization


def stripe_account_disconnected_notify(*, organization_id: int) -> int:
    """E-mail the clinic's active administrators that its Stripe account was disconnected (once
    per disconnection: the task is queued by the one update that marked it). Returns how many
    were told."""
    from django.conf import settings
    from django.core.mail import send_mail
    from django.urls import reverse

    from org_profile.enums import Role
    from org_profile.models import Membership

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None or organization.stripe_disconnected_at is None:
        return 0
    emails = sorted(
        Membership.objects.filter(organization=organization, role=Role.ADMINISTRATOR, is_active=True, user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not emails:
        return 0
    url = settings.SITE_URL + reverse("organization_profile")
    send_mail(
        subject=f"{organization.name}: your Stripe account was disconnected from LumaPay",
        message=(
            f"Someone with access to {organization.name}'s Stripe account disconnected it from LumaPay.\n\n"
            "Until it is connected again, LumaPay cannot take card payments through Stripe, refund them, "
            "or keep the account's details up to date. If this was not intended, connect the account again "
            f"from the organization profile:\n\n{url}\n"
        ),
        from_email=None,
        recipient_list=emails,
    )
    return len(emails)
