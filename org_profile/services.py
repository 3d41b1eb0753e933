"""Writes to an organization's own settings: its legal and public-facing information, which roles
may refund, which may use cards on file and how much one charge of a card on file may take.
Administrators only; every change is audited with its old and new values."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction as db_transaction

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents

from . import lockout
from .access import ADMINISTRATORS, AccessDenied, staff_access
from .enums import Role
from .models import IDLE_TIMEOUT_MINUTES_RANGE, Membership, Organization, User


LEGAL_FIELDS = ("legal_name", "tax_id_last4", "address_line1", "address_line2", "city", "state", "postal_code")
PUBLIC_FIELDS = ("public_name", "support_phone", "support_email", "website", "statement_descriptor")
ROLE_FIELDS = ("refund_roles", "saved_card_roles")
SESSION_FIELDS = ("idle_timeout_minutes",)
EDITABLE_FIELDS = LEGAL_FIELDS + PUBLIC_FIELDS + ROLE_FIELDS + ("saved_card_charge_max_cents",) + SESSION_FIELDS

STATEMENT_DESCRIPTOR_MAX_LENGTH = 22
# Card networks print it on the patient's statement; processors (Stripe among them) accept 5 to 22
# Latin letters, digits and spaces with at least one letter. It never carries patient data.
_DESCRIPTOR_CHARACTERS = re.compile(r"[A-Za-z0-9 ]*")
_PHONE_CHARACTERS = re.compile(r"\+?[0-9 ().\-]*")


class OrganizationSettingsInvalid(ApplicationError):
    """Some values are not acceptable; ``errors`` maps each field to its messages. Nothing was saved."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Some settings need fixing: nothing was saved.", extra={"errors": errors})
        self.errors = errors


def statement_descriptor_problem(value: str) -> str | None:
    """What is wrong with a statement descriptor, or None (an empty one is allowed)."""
    if not value:
        return None
    if len(value) > STATEMENT_DESCRIPTOR_MAX_LENGTH:
        return f"Use at most {STATEMENT_DESCRIPTOR_MAX_LENGTH} characters (this has {len(value)})."
    if not _DESCRIPTOR_CHARACTERS.fullmatch(value):
        return "Use only letters (A–Z), digits and spaces."
    if len(value) < 5:
        return "Use at least 5 characters."
    if not any(character.isalpha() for character in value):
        return "Include at least one letter."
    return None


def refund_roles_normalize(roles, *, field: str = "refund_roles") -> list[str]:
    """Administrators always, then the chosen roles, in the roles' own order (refunds and cards on
    file alike: ``field`` names the setting in the error)."""
    chosen = set(roles or []) | {Role.ADMINISTRATOR}
    unknown = chosen - set(Role.values)
    if unknown:
        raise OrganizationSettingsInvalid({field: [f"Unknown role: {', '.join(sorted(unknown))}."]})
    return [role for role in Role.values if role in chosen]


def saved_card_charge_max_problem(cents) -> str | None:
    """What is wrong with a limit for one charge of a card on file, or None. It is at least $1.00
    and never above what any payment may ask for (``PAYMENT_REQUEST_MAX_CENTS``)."""
    ceiling = settings.PAYMENT_REQUEST_MAX_CENTS
    if not isinstance(cents, int) or isinstance(cents, bool) or not 100 <= cents <= ceiling:
        return f"Enter an amount between $1.00 and {format_cents(ceiling)}."
    return None


def organization_update(*, organization: Organization, actor, data: dict) -> Organization:
    """Change the organization's legal and public-facing information, who may refund, who may use
    cards on file, and the most one charge of a card on file may take.

    ``data`` holds any of ``EDITABLE_FIELDS``; keys left out keep their value. Only an active
    administrator of the organization may. Raises ``OrganizationSettingsInvalid`` (per-field
    messages) or ``ApplicationError``, and then writes nothing. Writes one "organization.updated"
    audit event with ``{field: [old, new]}`` for each field that changed, in the same database
    transaction, and none when nothing changed. Returns the organization as stored (the row it
    locked); the ``organization`` passed in is left as it was.
    """
    refused = "Only administrators can change the organization's settings."
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.NOT_A_MEMBER: refused, AccessDenied.ROLE: refused},
    )
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These settings cannot be changed here: {', '.join(sorted(unknown))}.")
    values = _clean(organization, data)

    with db_transaction.atomic():
        # Locked so two administrators saving at once each record the values they replaced.
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        changes = {
            field: [getattr(locked, field), value] for field, value in values.items() if getattr(locked, field) != value
        }
        if changes:
            for field, (_old, new) in changes.items():
                setattr(locked, field, new)
            locked.save(update_fields=list(changes))
            audit_event_record(
                organization=locked,
                action=AuditAction.ORGANIZATION_UPDATED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes=changes,
            )
    return locked


PLATFORM_FEE_FIELDS = ("platform_fee_percent", "platform_fee_fixed_cents")


def organization_platform_fee_set(*, organization: Organization, actor, percent, fixed_cents) -> Organization:
    """Set the platform's fee on the organization's charges (org_profile.fees): platform operators
    only (the Django admin), never the clinic. Raises ``OrganizationSettingsInvalid`` and writes
    nothing when a value is out of range; writes one "organization.updated" audit event with the
    old and new values when anything changed. Applies to charges made from now on."""
    if not (actor is not None and actor.is_active and actor.is_staff):
        raise ApplicationError("Only platform operators can set the platform's fee.")
    values, errors = {}, {}
    for field, value in zip(PLATFORM_FEE_FIELDS, (percent, fixed_cents)):
        try:
            values[field] = Organization._meta.get_field(field).clean(value, organization)
        except ValidationError as error:
            errors[field] = list(error.messages)
    if errors:
        raise OrganizationSettingsInvalid(errors)
    with db_transaction.atomic():
        locked = Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        changes = {
            field: [str(getattr(locked, field)), str(value)] for field, value in values.items() if getattr(locked, field) != value
        }
        if changes:
            for field in changes:
                setattr(locked, field, values[field])
            locked.save(update_fields=list(changes))
            audit_event_record(
                organization=locked,
                action=AuditAction.ORGANIZATION_UPDATED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes=changes,
            )
    return locked


def _clean(organization: Organization, data: dict) -> dict:
    """Normalized values, or ``OrganizationSettingsInvalid`` with every problem at once."""
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for field, raw in data.items():
        if field in ROLE_FIELDS:
            try:
                values[field] = refund_roles_normalize(raw, field=field)
            except OrganizationSettingsInvalid as error:
                errors.update(error.errors)
            continue
        if field == "saved_card_charge_max_cents":
            problem = saved_card_charge_max_problem(raw)
            if problem:
                errors[field] = [problem]
            else:
                values[field] = raw
            continue
        value = " ".join(str(raw or "").split()) if field != "website" else str(raw or "").strip()
        problem = _field_problem(field, value)
        if problem:
            errors[field] = [problem]
            continue
        try:
            # Then the model field's own checks: length, e-mail address, URL.
            values[field] = Organization._meta.get_field(field).clean(value, organization)
        except ValidationError as error:
            errors[field] = list(error.messages)
    if errors:
        raise OrganizationSettingsInvalid(errors)
    return values


def _field_problem(field: str, value: str) -> str | None:
    if field == "statement_descriptor":
        return statement_descriptor_problem(value)
    if field == "tax_id_last4" and value and not (len(value) == 4 and value.isdigit()):
        return "Enter exactly the last 4 digits of the tax ID."
    if field == "idle_timeout_minutes":
        low, high = IDLE_TIMEOUT_MINUTES_RANGE
        if not (value.isdigit() and low <= int(value) <= high):
            return f"Enter a whole number of minutes from {low} to {high}."
    if field == "support_phone" and value:
        if not _PHONE_CHARACTERS.fullmatch(value) or sum(c.isdigit() for c in value) < 7:
            return "Enter a phone number, such as +1 217 555 0100."
    return None


# -- sign-in lockout --------------------------------------------------------------------------------


def sign_in_lockout_record(*, email: str, ip_address: str | None) -> int:
    """Record that the account with this e-mail address was locked out of signing in: one
    "sign_in.locked" audit event in each organization it is an active member of, with the address
    the last failure came from. Returns how many were written (none for an address no member has,
    or an operator outside every organization: axes' own records in Django admin keep those)."""
    memberships = Membership.objects.filter(user__email__iexact=email, is_active=True).select_related("user", "organization")
    written = 0
    with db_transaction.atomic():
        for membership in memberships:
            audit_event_record(
                organization=membership.organization,
                action=AuditAction.SIGN_IN_LOCKED,
                actor_type=ActorType.SYSTEM,
                changes={
                    "user_id": membership.user_id,
                    "email": membership.user.email,
                    "lockout_minutes": settings.SIGN_IN_LOCKOUT_MINUTES,
                },
                ip_address=ip_address,
            )
            written += 1
    return written


def sign_in_unlock(*, organization: Organization, actor, member: User, ip_address: str | None = None) -> bool:
    """An administrator of ``organization`` lets a member of it sign in again at once: the wrong
    passwords counted against the member's e-mail address are forgotten, and one
    "sign_in.unlocked" audit event is written. Returns False, and writes nothing, when the member
    was not locked. Raises ``AccessDenied`` for anyone but an active administrator, and for a
    user who is not a member of ``organization``."""
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.ROLE: "Only administrators can unlock a member's sign-in."},
    )
    if not Membership.objects.filter(organization=organization, user=member).exists():
        raise AccessDenied("This person is not a member of your organization.", reason=AccessDenied.NOT_A_MEMBER)
    with db_transaction.atomic():
        if not lockout.locked_emails([member.email]):
            return False
        lockout.account_unlock(member.email)
        audit_event_record(
            organization=organization,
            action=AuditAction.SIGN_IN_UNLOCKED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes={"user_id": member.pk, "email": member.email},
            ip_address=ip_address,
        )
    return True


def sign_in_unlock_by_operator(*, user: User, actor, ip_address: str | None = None) -> bool:
    """A platform operator (Django admin) lets a user sign in again at once. Writes one
    "sign_in.unlocked" audit event in each organization the user is an active member of. Returns
    False, and writes nothing, when the user was not locked."""
    if not (actor is not None and actor.is_active and actor.is_staff):
        raise ApplicationError("Only platform operators can unlock a sign-in here.")
    with db_transaction.atomic():
        if not lockout.locked_emails([user.email]):
            return False
        lockout.account_unlock(user.email)
        for membership in Membership.objects.filter(user=user, is_active=True).select_related("organization"):
            audit_event_record(
                organization=membership.organization,
                action=AuditAction.SIGN_IN_UNLOCKED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes={"user_id": user.pk, "email": user.email, "by_operator": True},
                ip_address=ip_address,
            )
    return True
