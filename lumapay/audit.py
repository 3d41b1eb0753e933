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
    """The caller's address. Behind a proxy (``USE_X_FORWARDED_FOR=true``) it is the address the
    proxy saw, read from X-Forwarded-For: the entry ``FORWARDED_PROXY_COUNT`` from the right, as
    each trusted proxy appends the address it was reached from. Entries further left were sent by
    the caller and prove nothing (a client can send its own X-Forwarded-For)."""
    from django.conf import settings

    if getattr(settings, "USE_X_FORWARDED_FOR", False):
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        proxies = max(1, getattr(settings, "FORWARDED_PROXY_COUNT", 1))
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
