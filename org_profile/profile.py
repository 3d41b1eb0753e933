"""The organization's profile: its legal information, what patients see (name, logo, support
contacts, card-statement descriptor), and the people Stripe asks about (owners of 25% or more
and a controller).

Administrators only. Every change is audited with its before and after, the tax ID shown by its
last 4 digits and a person's date of birth and SSN digits never (they are "on file"). For a clinic
on a connected Stripe account, what changed is pushed to the account by a Celery task queued once
the change commits (transactions.tasks: the push lives in transactions, which sits above us).
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction as db_transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.task_queue import task_enqueue_on_commit

from .access import ADMINISTRATORS, AccessDenied, staff_access
from .enums import BusinessType, IndustryCode
from .logo import logo_png_from_upload
from .models import Organization, OrganizationPerson
from .profile_secrets import secret_encrypt

# The Celery tasks (transactions.tasks) that push a change to the clinic's Stripe account.
PROFILE_PUSH_TASK = "transactions.tasks.stripe_account_profile_push"
PERSON_PUSH_TASK = "transactions.tasks.stripe_person_push"
PERSON_REMOVE_TASK = "transactions.tasks.stripe_person_remove"

LEGAL_FIELDS = (
    "legal_name", "business_type", "tax_id", "address_line1", "address_line2", "city", "state", "postal_code",
    "industry_code",
)
PUBLIC_FIELDS = ("public_name", "support_phone", "support_email", "website", "statement_descriptor")
PERSON_FIELDS = (
    "first_name", "last_name", "title", "email", "phone", "date_of_birth", "ssn_last4", "address_line1",
    "address_line2", "city", "state", "postal_code", "is_owner", "ownership_percent", "is_controller",
)
# Entered once, kept encrypted, never shown again: a form left empty keeps what is on file.
PERSON_SECRET_FIELDS = ("date_of_birth", "ssn_last4")
ON_FILE = "on file"

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "PR": "Puerto Rico", "GU": "Guam",
    "VI": "U.S. Virgin Islands", "AS": "American Samoa", "MP": "Northern Mariana Islands",
}

STATEMENT_DESCRIPTOR_MAX_LENGTH = 22
_EIN = re.compile(r"(\d{2})-?(\d{7})")
_ZIP = re.compile(r"\d{5}(-\d{4})?")
_PHONE_CHARACTERS = re.compile(r"\+?[0-9 ().\-]*")
_DESCRIPTOR_FORBIDDEN = set("<>\\'\"*")
_SSN_LAST4 = re.compile(r"\d{4}")


class ProfileInvalid(ApplicationError):
    """Some values are not acceptable; ``errors`` maps each field to its messages. Nothing was saved."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("Some details need fixing: nothing was saved.", extra={"errors": errors})
        self.errors = errors


# -- the rules ----------------------------------------------------------------------------------


def ein_normalize(value: str) -> str | None:
    """An EIN as NN-NNNNNNN, or None when it is not one (nine digits, optionally with the hyphen)."""
    match = _EIN.fullmatch("".join(value.split()))
    if not match or match.group(1) == "00" or match.group(2) == "0000000":
        return None
    return f"{match.group(1)}-{match.group(2)}"


def phone_problem(value: str) -> str | None:
    """A US number (10 digits, or 11 with the leading 1) or an international one (+ and 8 to 15 digits)."""
    digits = re.sub(r"\D", "", value)
    if not _PHONE_CHARACTERS.fullmatch(value):
        return "Enter a phone number with digits only, such as +1 217 555 0100."
    if value.startswith("+"):
        if digits.startswith("1") and len(digits) != 11:
            return "A US phone number has 10 digits after +1, such as +1 217 555 0100."
        if not 8 <= len(digits) <= 15:
            return "An international phone number has 8 to 15 digits after the +."
        return None
    if len(digits) == 10 or (len(digits) == 11 and digits.startswith("1")):
        return None
    return "Enter a 10-digit US phone number, such as (217) 555-0100, or an international one starting with +."


def phone_e164(value: str) -> str:
    """A valid phone number as Stripe wants it: +12175550100."""
    digits = re.sub(r"\D", "", value)
    if value.startswith("+"):
        return f"+{digits}"
    return f"+1{digits[-10:]}"


def statement_descriptor_problem(value: str) -> str | None:
    """Stripe's rules for the statement descriptor: 5 to 22 Latin characters with at least one
    letter, and none of < > \\ ' " *. An empty one is allowed (Stripe then uses the account's name)."""
    if not value:
        return None
    if len(value) > STATEMENT_DESCRIPTOR_MAX_LENGTH:
        return f"Use at most {STATEMENT_DESCRIPTOR_MAX_LENGTH} characters (this has {len(value)})."
    forbidden = sorted(_DESCRIPTOR_FORBIDDEN & set(value))
    if forbidden:
        return f"Leave out {' '.join(forbidden)}: card statements cannot show < > \\ ' \" or *."
    if not all(" " <= character <= "~" for character in value):
        return "Use Latin letters without accents (A–Z), digits, spaces and simple punctuation."
    if len(value) < 5:
        return "Use at least 5 characters."
    if not any(character.isalpha() for character in value):
        return "Include at least one letter."
    return None


def _address_problems(values: dict, errors: dict, *, required: bool) -> None:
    """The state (2 letters, a US state or territory) and the ZIP code (12345 or 12345-6789)."""
    state = values.get("state", "")
    if state and state not in US_STATES:
        errors.setdefault("state", []).append("Choose a US state (two letters, such as IL).")
    postal_code = values.get("postal_code", "")
    if postal_code and not _ZIP.fullmatch(postal_code):
        errors.setdefault("postal_code", []).append("Enter a ZIP code as 12345 or 12345-6789.")
    if required:
        for field, label in (("address_line1", "the street address"), ("city", "the city"), ("state", "the state"), ("postal_code", "the ZIP code")):
            if not values.get(field):
                errors.setdefault(field, []).append(f"Enter {label}.")


def _text(raw) -> str:
    return " ".join(str(raw or "").split())


def _require_administrator(organization: Organization, actor) -> None:
    refused = "Only administrators can change the organization's profile."
    staff_access(
        organization=organization,
        actor=actor,
        roles=ADMINISTRATORS,
        denied={AccessDenied.NOT_A_MEMBER: refused, AccessDenied.ROLE: refused},
    )


def _model_clean(model, field: str, value, instance, errors: dict):
    try:
        return model._meta.get_field(field).clean(value, instance)
    except ValidationError as error:
        errors.setdefault(field, []).extend(error.messages)
        return value


def _push_after_commit(organization: Organization, task: str, *args) -> None:
    """Queue the Stripe push of a change once it commits: only for a clinic on a connected account."""
    if organization.stripe_connected:
        task_enqueue_on_commit(task, *args, robust=True)


def _tax_id_masked(last4: str) -> str | None:
    return f"••-•••{last4}" if last4 else None


# -- legal information ----------------------------------------------------------------------------


@sensitive_variables()
def organization_legal_update(*, organization: Organization, actor, data: dict) -> Organization:
    """Change the legal information: legal name, business type, tax ID (EIN), registered address and
    industry code. ``data`` holds any of ``LEGAL_FIELDS``; keys left out keep their value, and an
    empty ``tax_id`` keeps the one on file. Raises ``ProfileInvalid`` (per field) and writes nothing.

    Writes one ORGANIZATION_LEGAL_CHANGED audit event with ``{field: [before, after]}`` (the tax ID
    as ``••-•••1234``) when anything changed, and queues the Stripe push of the changed fields.
    """
    _require_administrator(organization, actor)
    unknown = set(data) - set(LEGAL_FIELDS)
    if unknown:
        raise ApplicationError(f"These details cannot be changed here: {', '.join(sorted(unknown))}.")
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for field, raw in data.items():
        value = _text(raw)
        if field == "tax_id":
            if value:
                ein = ein_normalize(value)
                if ein is None:
                    errors["tax_id"] = ["Enter the EIN as 9 digits, such as 12-3456789."]
                else:
                    values["tax_id"] = ein
            continue
        if field == "state":
            value = value.upper()
        if field == "business_type" and value and value not in BusinessType.values:
            errors[field] = ["Choose the kind of business."]
            continue
        if field == "industry_code" and value and value not in IndustryCode.values:
            errors[field] = ["Choose a healthcare industry code from the list."]
            continue
        values[field] = _model_clean(Organization, field, value, organization, errors)
    merged = {field: values.get(field, getattr(organization, field, "")) for field in ("state", "postal_code")}
    _address_problems(merged, errors, required=False)
    if "legal_name" in values and not values["legal_name"]:
        errors.setdefault("legal_name", []).append("Enter the business's legal name, as the IRS knows it.")
    if errors:
        raise ProfileInvalid(errors)

    with db_transaction.atomic():
        locked = Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        changes: dict = {}
        update_fields: list[str] = []
        ein = values.pop("tax_id", None)
        if ein is not None:
            last4 = ein[-4:]
            # The same EIN typed again is not a change (its token differs every time, its digits do not).
            from .profile_secrets import secret_decrypt

            if not locked.tax_id_encrypted or secret_decrypt(locked.tax_id_encrypted) != ein:
                changes["tax_id"] = [_tax_id_masked(locked.tax_id_last4), _tax_id_masked(last4)]
                locked.tax_id_encrypted = secret_encrypt(ein)
                locked.tax_id_last4 = last4
                update_fields += ["tax_id_encrypted", "tax_id_last4"]
        for field, value in values.items():
            if getattr(locked, field) != value:
                changes[field] = [getattr(locked, field), value]
                setattr(locked, field, value)
                update_fields.append(field)
        if changes:
            locked.save(update_fields=update_fields)
            event = audit_event_record(
                organization=locked,
                action=AuditAction.ORGANIZATION_LEGAL_CHANGED,
                actor_type=ActorType.STAFF,
                actor_user=actor,
                changes=changes,
            )
            _push_after_commit(locked, PROFILE_PUSH_TASK, locked.pk, sorted(changes), event.pk)
    return locked


# -- public information ---------------------------------------------------------------------------


def organization_public_update(*, organization: Organization, actor, data: dict) -> Organization:
    """Change what patients see: the public name, support phone and e-mail, website and statement
    descriptor. ``data`` holds any of ``PUBLIC_FIELDS``. Raises ``ProfileInvalid`` and writes
    nothing; writes one ORGANIZATION_PUBLIC_CHANGED audit event when anything changed, and queues
    the Stripe push of the changed fields."""
    _require_administrator(organization, actor)
    unknown = set(data) - set(PUBLIC_FIELDS)
    if unknown:
        raise ApplicationError(f"These details cannot be changed here: {', '.join(sorted(unknown))}.")
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for field, raw in data.items():
        value = str(raw or "").strip() if field == "website" else _text(raw)
        if field == "website" and value and "://" not in value:
            value = f"https://{value}"  # people type "riverside.example"
        if field == "statement_descriptor":
            value = value.upper()
            problem = statement_descriptor_problem(value)
            if problem:
                errors[field] = [problem]
                continue
        if field == "support_phone" and value:
            problem = phone_problem(value)
            if problem:
                errors[field] = [problem]
                continue
        if field == "website" and value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except ValidationError:
                errors[field] = ["Enter the website's address, such as riverside.example."]
                continue
        values[field] = _model_clean(Organization, field, value, organization, errors)
    if errors:
        raise ProfileInvalid(errors)
    return _public_save(organization, actor, values)


def _public_save(organization: Organization, actor, values: dict, *, recorded: dict | None = None) -> Organization:
    with db_transaction.atomic():
        locked = Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        changed = [field for field, value in values.items() if getattr(locked, field) != value]
        if not changed:
            return locked
        changes = recorded or {field: [getattr(locked, field), values[field]] for field in changed}
        for field in changed:
            setattr(locked, field, values[field])
        locked.save(update_fields=changed)
        event = audit_event_record(
            organization=locked,
            action=AuditAction.ORGANIZATION_PUBLIC_CHANGED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes=changes,
        )
        pushed = [field for field in changed if field in PUBLIC_FIELDS]
        if pushed:
            _push_after_commit(locked, PROFILE_PUSH_TASK, locked.pk, sorted(pushed), event.pk)
    return locked


def organization_logo_set(*, organization: Organization, actor, data: bytes) -> Organization:
    """Store an uploaded logo (PNG, JPEG or WebP, checked by its content), resized to at most
    512 pixels a side, as a PNG. Raises ``LogoRefused`` with the reason. Audited (its size, never
    the image)."""
    _require_administrator(organization, actor)
    png, (width, height) = logo_png_from_upload(data)
    before = "a logo" if organization.logo_png else None
    return _public_save(
        organization,
        actor,
        {"logo_png": png, "logo_updated_at": timezone.now()},
        recorded={"logo": [before, f"a {width}×{height} PNG"]},
    )


def organization_logo_remove(*, organization: Organization, actor) -> Organization:
    _require_administrator(organization, actor)
    if not organization.logo_png:
        return organization
    return _public_save(organization, actor, {"logo_png": None, "logo_updated_at": timezone.now()}, recorded={"logo": ["a logo", None]})


# -- management and ownership ----------------------------------------------------------------------


@sensitive_variables()
def _person_clean(data: dict, *, person: OrganizationPerson | None) -> dict:
    """Normalized values for a person, or ``ProfileInvalid`` with every problem at once."""
    errors: dict[str, list[str]] = {}
    values: dict = {}
    instance = person or OrganizationPerson()
    for field in PERSON_FIELDS:
        if field not in data and person is not None:
            continue
        raw = data.get(field)
        if field in ("is_owner", "is_controller"):
            values[field] = raw is True or str(raw).lower() in ("true", "on", "1")
            continue
        value = _text(raw)
        if field == "ownership_percent":
            if not value:
                values[field] = None
                continue
            try:
                percent = Decimal(value.rstrip("%").strip())
            except InvalidOperation:
                errors[field] = ["Enter the share owned as a number, such as 50."]
                continue
            if percent != percent.quantize(Decimal("0.01")):
                errors[field] = ["Use at most two decimal places, such as 33.33."]
                continue
            values[field] = percent
            continue
        if field == "date_of_birth":
            if not value:
                continue  # keeps the one on file
            try:
                born = datetime.date.fromisoformat(value)
            except ValueError:
                errors[field] = ["Enter the date of birth as YYYY-MM-DD, such as 1975-04-30."]
                continue
            today = timezone.localdate()
            age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
            if not 18 <= age <= 120:
                errors[field] = ["Stripe accepts owners and controllers who are 18 or older: check the date of birth."]
                continue
            values[field] = born.isoformat()
            continue
        if field == "ssn_last4":
            if not value:
                continue
            if not _SSN_LAST4.fullmatch(value):
                errors[field] = ["Enter exactly the last 4 digits of the Social Security number."]
                continue
            values[field] = value
            continue
        if field == "state":
            value = value.upper()
        if field == "phone" and value:
            problem = phone_problem(value)
            if problem:
                errors[field] = [problem]
                continue
        if field == "email" and value:
            try:
                EmailValidator()(value)
            except ValidationError:
                errors[field] = ["Enter an e-mail address, such as name@clinic.example."]
                continue
        # Empty required values get their own message below.
        values[field] = _model_clean(OrganizationPerson, field, value, instance, errors) if value else ""

    merged = {field: values.get(field, getattr(person, field, None) if person else None) for field in PERSON_FIELDS if field not in PERSON_SECRET_FIELDS}
    for field, label in (("first_name", "the first name"), ("last_name", "the last name"), ("email", "the e-mail address"), ("phone", "the phone number")):
        if not merged.get(field) and field not in errors:
            errors.setdefault(field, []).append(f"Enter {label}.")
    _address_problems({key: merged.get(key) or "" for key in ("address_line1", "city", "state", "postal_code")}, errors, required=True)
    if not merged.get("is_owner") and not merged.get("is_controller"):
        errors.setdefault("is_owner", []).append("Stripe asks only about owners of 25% or more and the controller: tick at least one.")
    if merged.get("is_owner"):
        percent = merged.get("ownership_percent")
        if percent is None and "ownership_percent" not in errors:
            errors["ownership_percent"] = ["Enter the share this owner holds (25 to 100)."]
        elif percent is not None and not Decimal(25) <= percent <= Decimal(100):
            errors["ownership_percent"] = ["An owner Stripe asks about holds 25% to 100%: enter a share in that range."]
    else:
        values["ownership_percent"] = None
    if merged.get("is_controller") and not merged.get("title") and "title" not in errors:
        errors["title"] = ["Enter the controller's title, such as Practice Administrator or CEO."]
    for field in PERSON_SECRET_FIELDS:
        on_file = person is not None and getattr(person, "dob_encrypted" if field == "date_of_birth" else "ssn_last4_encrypted")
        if field not in values and not on_file and field not in errors:
            errors[field] = [
                "Enter the date of birth." if field == "date_of_birth" else "Enter the last 4 digits of the Social Security number."
            ]
    if errors:
        raise ProfileInvalid(errors)
    return values


def _ownership_total_check(organization: Organization, *, person_pk: int | None, values: dict, person) -> None:
    share = values.get("ownership_percent", getattr(person, "ownership_percent", None)) if values.get("is_owner", getattr(person, "is_owner", False)) else None
    others = (
        OrganizationPerson.objects.filter(organization=organization, is_owner=True).exclude(pk=person_pk).values_list("ownership_percent", flat=True)
    )
    total = sum((percent or Decimal(0) for percent in others), Decimal(0)) + (share or Decimal(0))
    if total > 100:
        raise ProfileInvalid({"ownership_percent": [f"The owners' shares would add up to {total.normalize():f}%: together they cannot exceed 100%."]})


def _controller_kept(organization: Organization, *, without: int) -> None:
    if not OrganizationPerson.objects.filter(organization=organization, is_controller=True).exclude(pk=without).exists():
        raise ProfileInvalid({"is_controller": ["Stripe needs a controller: name another controller first."]})


def _person_changes(person: OrganizationPerson | None, values: dict) -> tuple[dict, list[str]]:
    """What a save changes, as the audit records it (secrets as "on file"), and which fields."""
    changes: dict = {}
    fields: list[str] = []
    for field, value in values.items():
        if field in PERSON_SECRET_FIELDS:
            stored = getattr(person, "dob_encrypted" if field == "date_of_birth" else "ssn_last4_encrypted", "") if person else ""
            changes[field] = [ON_FILE if stored else None, "replaced" if stored else ON_FILE]
            fields.append(field)
            continue
        before = getattr(person, field) if person is not None else None
        if before != value:
            changes[field] = [str(before) if isinstance(before, Decimal) else before, str(value) if isinstance(value, Decimal) else value]
            fields.append(field)
    return changes, fields


@sensitive_variables()
def _person_apply(person: OrganizationPerson, values: dict) -> None:
    for field, value in values.items():
        if field == "date_of_birth":
            person.dob_encrypted = secret_encrypt(value)
        elif field == "ssn_last4":
            person.ssn_last4_encrypted = secret_encrypt(value)
        else:
            setattr(person, field, value)


@sensitive_variables()
def organization_person_add(*, organization: Organization, actor, data: dict) -> OrganizationPerson:
    """Add an owner (25% or more) or the controller, with what Stripe asks about them. The date of
    birth and SSN's last 4 digits are stored encrypted. Raises ``ProfileInvalid``. Audited as
    ORGANIZATION_PERSON_ADDED (secrets "on file"); pushed to Stripe after commit."""
    _require_administrator(organization, actor)
    values = _person_clean(data, person=None)
    with db_transaction.atomic():
        Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)  # one change of the people at a time
        _ownership_total_check(organization, person_pk=None, values=values, person=None)
        person = OrganizationPerson(organization=organization)
        changes, fields = _person_changes(None, values)
        _person_apply(person, values)
        person.save()
        event = audit_event_record(
            organization=organization,
            action=AuditAction.ORGANIZATION_PERSON_ADDED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes={"person": person.pk, **changes},
        )
        _push_after_commit(organization, PERSON_PUSH_TASK, person.pk, sorted(fields), event.pk)
    return person


@sensitive_variables()
def organization_person_change(*, organization: Organization, actor, person_id: int, data: dict) -> OrganizationPerson:
    """Change an owner or the controller; an empty date of birth or SSN keeps the one on file.
    Audited as ORGANIZATION_PERSON_CHANGED with what changed; pushed to Stripe after commit."""
    _require_administrator(organization, actor)
    with db_transaction.atomic():
        Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        person = OrganizationPerson.objects.filter(organization=organization, pk=person_id).first()
        if person is None:
            raise PersonNotFound("No such person in this organization's profile.")
        values = _person_clean(data, person=person)
        _ownership_total_check(organization, person_pk=person.pk, values=values, person=person)
        if person.is_controller and values.get("is_controller") is False:
            _controller_kept(organization, without=person.pk)
        changes, fields = _person_changes(person, values)
        if not changes:
            return person
        _person_apply(person, {field: values[field] for field in fields})
        person.save()
        event = audit_event_record(
            organization=organization,
            action=AuditAction.ORGANIZATION_PERSON_CHANGED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes={"person": person.pk, "name": person.full_name, **changes},
        )
        _push_after_commit(organization, PERSON_PUSH_TASK, person.pk, sorted(fields), event.pk)
    return person


class PersonNotFound(ApplicationError):
    """No such person in this organization (another organization's is "not found" too)."""


def organization_person_remove(*, organization: Organization, actor, person_id: int) -> None:
    """Remove an owner or controller (not the last controller). Audited as
    ORGANIZATION_PERSON_REMOVED; removed from the Stripe account after commit."""
    _require_administrator(organization, actor)
    with db_transaction.atomic():
        Organization.objects.select_for_update(of=("self",)).get(pk=organization.pk)
        person = OrganizationPerson.objects.filter(organization=organization, pk=person_id).first()
        if person is None:
            raise PersonNotFound("No such person in this organization's profile.")
        if person.is_controller:
            _controller_kept(organization, without=person.pk)
        event = audit_event_record(
            organization=organization,
            action=AuditAction.ORGANIZATION_PERSON_REMOVED,
            actor_type=ActorType.STAFF,
            actor_user=actor,
            changes={
                "person": person.pk,
                "name": [person.full_name, None],
                "is_owner": [person.is_owner, None],
                "is_controller": [person.is_controller, None],
            },
        )
        stripe_person_id = person.stripe_person_id
        person.delete()
        if stripe_person_id:
            _push_after_commit(organization, PERSON_REMOVE_TASK, organization.pk, stripe_person_id, event.pk)
