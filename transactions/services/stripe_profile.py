"""The organization's profile, pushed to its connected Stripe account.

org_profile.profile queues these (by task name) once a change commits, naming the fields that
changed and the audit event that recorded it: only those fields are sent, with their values as
they are when the task runs. Business details go to Account update (business type, company,
business profile, the card-statement descriptor); owners and the controller to the Persons API.
Nothing about patients is ever sent. Each push is audited as STRIPE_ACCOUNT_PROFILE_PUSHED with
the names of the fields sent (never their values). The Idempotency-Key is the audit event's, so a
retried task does not make a second person.
"""

from __future__ import annotations

import datetime
import logging

from django.db import transaction as db_transaction
from django.views.decorators.debug import sensitive_variables

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile import phone_e164
from org_profile.profile_secrets import secret_decrypt

from ..gateways.stripe import StripeGateway, stripe_configured
from ..gateways.stripe.client import idempotency_key

logger = logging.getLogger(__name__)

_ADDRESS_FIELDS = {
    "address_line1": "line1",
    "address_line2": "line2",
    "city": "city",
    "state": "state",
    "postal_code": "postal_code",
}


def _pushable(organization: Organization | None) -> bool:
    if organization is None or not organization.stripe_connected or not stripe_configured():
        return False
    return True


# Error reports never show its locals (the EIN, a date of birth, SSN digits).
@sensitive_variables()
def account_params(organization: Organization, fields: list[str]) -> dict:
    """The Account update parameters for the changed ``fields`` of the profile, and nothing else."""
    params: dict = {}
    company: dict = {}
    business_profile: dict = {}
    for field in fields:
        if field == "legal_name":
            company["name"] = organization.legal_name
        elif field == "business_type" and organization.business_type:
            params["business_type"] = organization.business_type
        elif field == "tax_id" and organization.tax_id_encrypted:
            company["tax_id"] = secret_decrypt(organization.tax_id_encrypted).replace("-", "")
        elif field in _ADDRESS_FIELDS:
            company.setdefault("address", {})[_ADDRESS_FIELDS[field]] = getattr(organization, field)
        elif field == "industry_code":
            business_profile["mcc"] = organization.industry_code
        elif field == "public_name":
            business_profile["name"] = organization.display_name
        elif field == "support_phone":
            business_profile["support_phone"] = phone_e164(organization.support_phone) if organization.support_phone else ""
        elif field == "support_email":
            business_profile["support_email"] = organization.support_email
        elif field == "website":
            business_profile["url"] = organization.website
        elif field == "statement_descriptor":
            # Stripe prints the account's descriptor on every card charge made on it.
            params["settings"] = {"payments": {"statement_descriptor": organization.statement_descriptor}}
    if "address" in company:
        company["address"]["country"] = "US"
    if company:
        params["company"] = company
    if business_profile:
        params["business_profile"] = business_profile
    return params


@sensitive_variables()
def person_params(person: OrganizationPerson, fields: list[str]) -> dict:
    """The Persons API parameters for the changed ``fields`` of an owner or the controller."""
    params: dict = {}
    relationship: dict = {}
    for field in fields:
        if field in ("first_name", "last_name", "email"):
            params[field] = getattr(person, field)
        elif field == "phone":
            params["phone"] = phone_e164(person.phone) if person.phone else ""
        elif field == "title":
            relationship["title"] = person.title
        elif field in _ADDRESS_FIELDS:
            params.setdefault("address", {})[_ADDRESS_FIELDS[field]] = getattr(person, field)
        elif field == "date_of_birth" and person.dob_encrypted:
            born = datetime.date.fromisoformat(secret_decrypt(person.dob_encrypted))
            params["dob"] = {"day": born.day, "month": born.month, "year": born.year}
        elif field == "ssn_last4" and person.ssn_last4_encrypted:
            params["ssn_last_4"] = secret_decrypt(person.ssn_last4_encrypted)
        elif field in ("is_owner", "ownership_percent"):
            relationship["owner"] = person.is_owner
            relationship["percent_ownership"] = str(person.ownership_percent) if person.is_owner else ""
        elif field == "is_controller":
            relationship["representative"] = person.is_controller
    if "address" in params:
        params["address"]["country"] = "US"
    if relationship:
        params["relationship"] = relationship
    return params


def _pushed_record(organization: Organization, what: dict) -> None:
    audit_event_record(
        organization=organization,
        action=AuditAction.STRIPE_ACCOUNT_PROFILE_PUSHED,
        actor_type=ActorType.SYSTEM,
        changes={"stripe_account_id": organization.stripe_account_id, **what},
    )


@sensitive_variables()
def stripe_account_profile_push(*, organization_id: int, fields: list[str], audit_event_id: int) -> bool:
    """Send the changed legal and public fields to the clinic's Stripe account. Returns whether
    anything was sent (nothing for a clinic not, or no longer, on a connected account)."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if not _pushable(organization):
        return False
    params = account_params(organization, fields)
    if not params:
        return False
    StripeGateway().account_profile_update(
        account_id=organization.stripe_account_id,
        params=params,
        idempotency_key=idempotency_key(row="audit_event", pk=audit_event_id, action="account_profile", content=params),
    )
    _pushed_record(organization, {"fields": sorted(fields)})
    return True


@sensitive_variables()
def stripe_person_push(*, person_id: int, fields: list[str], audit_event_id: int) -> bool:
    """Create or update an owner or the controller as a person on the clinic's Stripe account.

    The person's row stays locked from reading its Stripe id to storing it, so two pushes for one
    person (an edit while the first push is retried) run one after the other: the second finds the
    person created and updates it, never creating it twice. The create is keyed by the person, so
    a retried create whose answer was lost gets the same Stripe person back."""
    with db_transaction.atomic():
        person = OrganizationPerson.objects.select_for_update().filter(pk=person_id).select_related("organization").first()
        if person is None or not _pushable(person.organization):
            return False
        organization = person.organization
        # A person new to Stripe gets everything on file; a known one only what changed.
        creating = not person.stripe_person_id
        if creating:
            fields = sorted(set(fields) | {"first_name", "last_name", "email", "phone", "title", "date_of_birth", "ssn_last4",
                                           "address_line1", "address_line2", "city", "state", "postal_code", "is_owner", "is_controller"})
        params = person_params(person, fields)
        if not params:
            return False
        stripe_person_id = StripeGateway().account_person_save(
            account_id=organization.stripe_account_id,
            person_id=person.stripe_person_id,
            params=params,
            idempotency_key=(
                idempotency_key(row="organization_person", pk=person.pk, action="account_person_create")
                if creating
                else idempotency_key(row="audit_event", pk=audit_event_id, action="account_person", content=params)
            ),
        )
        if stripe_person_id != person.stripe_person_id:
            OrganizationPerson.objects.filter(pk=person.pk).update(stripe_person_id=stripe_person_id)
    _pushed_record(organization, {"person": person.pk, "fields": sorted(fields)})
    return True


def stripe_person_remove(*, organization_id: int, stripe_person_id: str, audit_event_id: int) -> bool:
    """Remove a person LumaPay had sent from the clinic's Stripe account."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if not _pushable(organization) or not stripe_person_id:
        return False
    StripeGateway().account_person_delete(account_id=organization.stripe_account_id, person_id=stripe_person_id)
    _pushed_record(organization, {"removed_person": stripe_person_id})
    return True
