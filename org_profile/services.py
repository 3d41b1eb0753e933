"""Writes to an organization's own settings: which roles may refund, which may use cards on file and how much one charge of a card on file may take.
Administrators only; every change is audited with its old and new values."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction as db_transaction
from django.utils import timezone
from django_otp import verify_token
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from lumapay.audit import audit_event_record
from lumapay.tenant_rls import all_organizations, organization_scope
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents

from . import lockout
from .access import ADMINISTRATORS, AccessDenied, staff_access
from .enums import Role
from .models import IDLE_TIMEOUT_MINUTES_RANGE, Location, Membership, Organization, User


# The legal and public information and the owners are the profile's (org_profile.profile).
ROLE_FIELDS = ("refund_roles", "saved_card_roles")
SESSION_FIELDS = ("idle_timeout_minutes",)
MFA_FIELDS = ("mfa_required_for_everyone",)
EDITABLE_FIELDS = ROLE_FIELDS + ("saved_card_charge_max_cents",) + SESSION_FIELDS + MFA_FIELDS


class OrganizationSettingsInvalid(ApplicationError):
    """Some values are not acceptable; ``errors`` maps each field to its messages. Nothing was saved."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Some settings need fixing: nothing was saved.", extra={"errors": errors})
        self.errors = errors


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
    """Change who may refund, who may use cards on file, the most one charge of a card on file may take, the idle timeout, and whether
    everyone signs in in two steps.

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

    return _organization_values_save(organization, values, actor=actor)


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
    # Decimals are recorded as text in the audit event's JSON ("1.50").
    return _organization_values_save(organization, values, actor=actor, recorded_as=str)


def _organization_values_save(organization: Organization, values: dict, *, actor, recorded_as=lambda value: value):
    """Store ``values`` on the organization's locked row and write one "organization.updated" audit
    event with ``{field: [old, new]}`` for what changed (none when nothing did), in one database
    transaction. Locked so two people saving at once each record the values they replaced."""
    with db_transaction.atomic():
        locked = Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        changed = [field for field, value in values.items() if getattr(locked, field) != value]
        if changed:
            changes = {field: [recorded_as(getattr(locked, field)), recorded_as(values[field])] for field in changed}
            for field in changed:
                setattr(locked, field, values[field])
            locked.save(update_fields=changed)
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
        if field == "mfa_required_for_everyone":
            values[field] = raw is True or str(raw).lower() in ("true", "on", "1")
            continue
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
        value = " ".join(str(raw or "").split())
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
    if field == "idle_timeout_minutes":
        low, high = IDLE_TIMEOUT_MINUTES_RANGE
        if not (value.isdigit() and low <= int(value) <= high):
            return f"Enter a whole number of minutes from {low} to {high}."
    return None


def _active_memberships(**filters) -> list[Membership]:
    """A person's active memberships in every organization: a sign-in, a lockout or an unlock
    concerns each clinic they belong to, whichever one the request works for (none, on the sign-in
    page). Read across clinics (reviewed; lumapay/tenant_rls.py); each audit event is then written
    in its own organization's scope, where row-level security checks it."""
    with all_organizations():
        return list(Membership.objects.filter(is_active=True, **filters).select_related("user", "organization"))


# -- sign-in lockout --------------------------------------------------------------------------------


def sign_in_lockout_record(*, email: str, ip_address: str | None) -> int:
    """Record that the account with this e-mail address was locked out of signing in: one
    "sign_in.locked" audit event in each organization it is an active member of, with the address
    the last failure came from. Returns how many were written (none for an address no member has,
    or an operator outside every organization: axes' own records in Django admin keep those)."""
    memberships = _active_memberships(user__email__iexact=email)
    written = 0
    with db_transaction.atomic():
        for membership in memberships:
            with organization_scope(membership.organization_id):
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
        for membership in _active_memberships(user=user):
            with organization_scope(membership.organization_id):
                audit_event_record(
                    organization=membership.organization,
                    action=AuditAction.SIGN_IN_UNLOCKED,
                    actor_type=ActorType.STAFF,
                    actor_user=actor,
                    changes={"user_id": user.pk, "email": user.email, "by_operator": True},
                    ip_address=ip_address,
                )
    return True


# -- two-step sign-in (django-otp) -------------------------------------------------------------------
#
# The second step is a 6-digit code from an authenticator app (django-otp's TOTPDevice) or one of 10
# single-use backup codes (django-otp's StaticDevice and StaticToken). django-otp keeps static tokens
# as typed; LumaPay stores only a hash of each backup code in the token's column (see
# ``backup_code_hash``), so the table's rows cannot be typed in. Events about a person's sign-in are
# recorded in each organization they belong to (an operator without one has django_admin_log).

BACKUP_CODE_COUNT = 10
# 12 characters from 31 that cannot be confused (no 0/o, 1/l/i): about 59 random bits per code.
_BACKUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_BACKUP_CODE_LENGTH = 12
AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_CODES_NAME = "Backup codes"


class MfaCodeRefused(ApplicationError):
    """The code was wrong, already used, or came too soon after wrong ones. Nothing was verified."""


class MemberNotFound(ApplicationError):
    """No such member in this organization (another organization's member is "not found" too)."""


def backup_code_normalize(text: str) -> str:
    """What a person types (``ABCD-efgh jkmn``) as stored: lowercase, no spaces or hyphens."""
    return "".join(str(text or "").split()).replace("-", "").lower()


def backup_code_hash(*, device_id: int, code: str) -> str:
    """What the StaticToken row holds for ``code``: 80 bits of a SHA-256 of the device and the code.

    Codes carry ~59 random bits, so a copy of the table does not give them back; the device id
    keeps one hash from matching the same code on another account. No secret key is mixed in, so
    rotating SECRET_KEY never invalidates anyone's codes.
    """
    digest = hashlib.sha256(f"lumapay-backup-code:{device_id}:{backup_code_normalize(code)}".encode()).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def backup_code_display(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def totp_key_new() -> str:
    """A new authenticator secret: 20 random bytes, hex as django-otp stores it."""
    return secrets.token_hex(20)


def totp_key_base32(key: str) -> str:
    """The secret as people type it into an authenticator app, in groups of 4."""
    text = base64.b32encode(bytes.fromhex(key)).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _audit_for_user(*, user, action: AuditAction, actor=None, changes=None, ip_address=None, organizations=None) -> None:
    if organizations is None:
        organizations = [m.organization for m in _active_memberships(user=user)]
    for organization in organizations:
        with organization_scope(organization.pk):
            audit_event_record(
                organization=organization,
                action=action,
                actor_type=ActorType.STAFF,
                actor_user=actor or user,
                changes={"member": user.email, **(changes or {})},
                ip_address=ip_address,
            )


def _backup_codes_replace(*, user) -> list[str]:
    device, _created = StaticDevice.objects.get_or_create(user=user, defaults={"name": BACKUP_CODES_NAME, "confirmed": True})
    device.token_set.all().delete()
    codes = ["".join(secrets.choice(_BACKUP_CODE_ALPHABET) for _ in range(_BACKUP_CODE_LENGTH)) for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=backup_code_hash(device_id=device.pk, code=code)) for code in codes
    )
    return [backup_code_display(code) for code in codes]


def _user_locked(user):
    # One sign-in change at a time per person (two tabs enrolling at once keep one authenticator).
    return User.objects.select_for_update().get(pk=user.pk)


def mfa_authenticator_enrol(*, user, key: str, code: str, ip_address: str | None = None) -> tuple[TOTPDevice, list[str]]:
    """Set up (or replace) ``user``'s authenticator app with the secret ``key`` they were shown,
    once ``code`` proves their app has it. Replaces any earlier authenticator and backup codes.

    Returns the device and 10 new backup codes, the only time they exist in plain text. Raises
    ``MfaCodeRefused`` and changes nothing when the code does not match. Writes one
    "mfa.enrolled" audit event (per organization of the user) in the same database transaction.
    The caller must only offer this to a session that passed the second step, or to a person who
    has no device yet.
    """
    device = TOTPDevice(user=user, key=key, name=AUTHENTICATOR_NAME, confirmed=True)
    typed = "".join(str(code or "").split())
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if not (typed.isdigit() and len(typed) == device.digits and totp.verify(int(typed), device.tolerance)):
        raise MfaCodeRefused(
            "That code does not match. Enter the 6-digit code your authenticator app shows now for LumaPay."
        )
    # The code just typed cannot sign anyone in again.
    device.last_t = totp.t()
    with db_transaction.atomic():
        _user_locked(user)
        replaced = TOTPDevice.objects.filter(user=user).delete()[0] > 0
        device.save()
        codes = _backup_codes_replace(user=user)
        _audit_for_user(
            user=user, action=AuditAction.MFA_ENROLLED, changes={"replaced_earlier_authenticator": replaced}, ip_address=ip_address
        )
    return device, codes


def mfa_backup_codes_generate(*, user, ip_address: str | None = None) -> list[str]:
    """10 new backup codes for ``user``, who has an authenticator; the earlier ones stop working.
    Writes one "mfa.backup_codes_generated" audit event per organization of the user."""
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        raise ApplicationError("Set up an authenticator app first: backup codes come with it.")
    with db_transaction.atomic():
        _user_locked(user)
        codes = _backup_codes_replace(user=user)
        _audit_for_user(user=user, action=AuditAction.MFA_BACKUP_CODES_GENERATED, ip_address=ip_address)
    return codes


def mfa_code_verify(*, user, code: str, ip_address: str | None = None):
    """The second step of signing in: a 6-digit code from ``user``'s authenticator app, or one of
    their backup codes (which then stops working). Returns the django-otp device that accepted it,
    for ``django_otp.login``.

    Wrong codes make the next try wait (1 s, 2 s, 4 s ... per device: django-otp's throttling).
    Raises ``MfaCodeRefused`` and writes "mfa.code_failed" (per organization of the user, with the
    caller's address) when the code is refused; writes "mfa.backup_code_used" when a backup code
    signed the user in.
    """
    typed = "".join(str(code or "").split())
    is_totp = typed.isdigit() and len(typed) == 6
    device_model = TOTPDevice if is_totp else StaticDevice
    wait_seconds = 0
    for device in device_model.objects.devices_for_user(user, confirmed=True):
        token = typed if is_totp else backup_code_hash(device_id=device.pk, code=typed)
        # django-otp's verify_token locks the device row, so a code is accepted once.
        accepted = verify_token(user, device.persistent_id, token)
        if accepted is not None:
            if not is_totp:
                _audit_for_user(
                    user=user,
                    action=AuditAction.MFA_BACKUP_CODE_USED,
                    changes={"backup_codes_left": accepted.token_set.count()},
                    ip_address=ip_address,
                )
            return accepted
        device.refresh_from_db()
        allowed, details = device.verify_is_allowed()
        if not allowed and details and details.get("locked_until"):
            wait_seconds = max(wait_seconds, math.ceil((details["locked_until"] - timezone.now()).total_seconds()))
    _audit_for_user(
        user=user,
        action=AuditAction.MFA_CODE_FAILED,
        changes={"kind": "authenticator" if is_totp else "backup code"},
        ip_address=ip_address,
    )
    if wait_seconds > 0:
        raise MfaCodeRefused(
            f"That code did not work. After a wrong code, wait {wait_seconds} second{'s' if wait_seconds != 1 else ''} before the next try."
        )
    raise MfaCodeRefused("That code did not work. Enter the 6-digit code your authenticator app shows now, or a backup code.")


def _devices_remove(*, user) -> dict:
    authenticators = TOTPDevice.objects.filter(user=user).count()
    backup_codes = StaticToken.objects.filter(device__user=user).count()
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    return {"authenticators_removed": authenticators, "backup_codes_removed": backup_codes}


def member_mfa_reset(*, organization: Organization, actor, membership_id: int, ip_address: str | None = None) -> Membership:
    """An administrator removes a member's authenticator app and backup codes (a lost phone): the
    member signs in with their password and sets up a new authenticator before anything else
    (when two-step sign-in is required of them). Sessions that passed the second step with the
    removed devices are no longer verified.

    Administrators of ``organization`` only; the member must belong to it (``MemberNotFound``
    otherwise, as for an id of another organization). An operator's account is reset by operators,
    and an administrator's own on their Sign-in security page. Writes "mfa.reset" in this
    organization, naming the member and what was removed.
    """
    refused = "Only administrators can reset a member's two-step sign-in."
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.NOT_A_MEMBER: refused, AccessDenied.ROLE: refused},
    )
    membership = Membership.objects.filter(organization=organization, pk=membership_id).select_related("user").first()
    if membership is None:
        raise MemberNotFound("No such member in this organization.")
    member = membership.user
    if member.pk == actor.pk:
        raise ApplicationError("To replace your own authenticator app, use Sign-in security.")
    if member.is_staff:
        raise ApplicationError("This account belongs to a LumaPay operator: LumaPay's operators reset it.")
    with db_transaction.atomic():
        _user_locked(member)
        removed = _devices_remove(user=member)
        _audit_for_user(
            user=member,
            action=AuditAction.MFA_RESET,
            actor=actor,
            changes={**removed, "by": "administrator"},
            ip_address=ip_address,
            organizations=[organization],
        )
    return membership


def user_mfa_reset_by_operator(*, actor, user) -> dict:
    """A LumaPay operator (Django admin) removes ``user``'s authenticator app and backup codes.
    Writes "mfa.reset" in each organization of the user. Returns what was removed."""
    if not (actor is not None and actor.is_active and actor.is_staff):
        raise ApplicationError("Only platform operators can reset two-step sign-in here.")
    with db_transaction.atomic():
        _user_locked(user)
        removed = _devices_remove(user=user)
        _audit_for_user(user=user, action=AuditAction.MFA_RESET, actor=actor, changes={**removed, "by": "operator"})
    return removed


def location_ehr_id_set(*, organization: Organization, actor, location_id: int, ehr_location_id: str) -> Location:
    """Say which of the EHR's places this location is (its FHIR Location id, its HL7 point of care),
    so appointments synced or uploaded with that id land here. Administrators only; unique within
    the organization; one "organization.updated" audit event with the old and new id."""
    refused = "Only administrators can change the organization's locations."
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.NOT_A_MEMBER: refused, AccessDenied.ROLE: refused},
    )
    value = (ehr_location_id or "").strip()
    if len(value) > 100:
        raise ApplicationError("The EHR location id can be at most 100 characters long.")
    with db_transaction.atomic():
        locked = Location.objects.select_for_update(of=("self",)).filter(organization=organization, pk=location_id).first()
        if locked is None:
            raise ApplicationError("No such location.")
        if value and Location.objects.filter(organization=organization, ehr_location_id=value).exclude(pk=locked.pk).exists():
            raise ApplicationError(f"Another location already has the EHR location id “{value}”.")
        if locked.ehr_location_id != value:
            audit_event_record(
                organization=organization,
                action=AuditAction.ORGANIZATION_UPDATED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes={"location": locked.pk, "location_name": locked.name, "ehr_location_id": [locked.ehr_location_id, value]},
            )
            locked.ehr_location_id = value
            locked.save(update_fields=["ehr_location_id"])
    return locked
