"""The audit-event helper: every state change and every PHI access goes through here."""

from __future__ import annotations

from typing import Any

from .enums import AuditAction
from .models import ActorType, AuditEvent


def actor_from(user) -> tuple[str, Any]:
    """(actor_type, actor_user) for a staff user, or the system when there is none."""
    if user is not None and getattr(user, "is_authenticated", False):
        return ActorType.STAFF, user
    return ActorType.SYSTEM, None


def audit_event_record(
    *,
    organization,
    action: AuditAction,
    actor_type: str,
    actor_user=None,
    patient=None,
    payment_request=None,
    transaction=None,
    changes: dict | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """One audit event, in the caller's database transaction. ``action`` is one of ``AuditAction``
    (a ValueError otherwise), so every timeline has a label for it."""
    return AuditEvent.objects.create(
        organization=organization,
        action=AuditAction(action),
        actor_type=actor_type,
        actor_user=actor_user,
        patient=patient,
        payment_request=payment_request,
        transaction=transaction,
        changes=changes or {},
        ip_address=ip_address,
    )


def client_ip(request) -> str | None:
    """The caller's address; behind a proxy set USE_X_FORWARDED_FOR=true so the proxy's header is used."""
    from django.conf import settings

    if getattr(settings, "USE_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR")
