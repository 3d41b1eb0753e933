"""Stripe Connect: each clinic's own Stripe account, created and onboarded from LumaPay.

Standard accounts: the clinic has its own Stripe dashboard and is the merchant of record; we make
direct charges on its account.
"""

from __future__ import annotations

from django.utils import timezone

from org_profile.models import Organization

from ..base import AccountFact
from .client import METADATA_ORGANIZATION, as_dict, idempotency_key, stripe_call, stripe_client
from .facts import account_fact_from_account

CONNECT_ACCOUNT_TYPE = "standard"


class StripeConnect:
    """Onboarding a clinic's connected account (part of ``StripeGateway``)."""

    def account_create(self, *, organization: Organization, attempt: int = 1) -> AccountFact:
        """A connected account for the clinic, with its business information only. ``attempt``: the
        how-manyth account this clinic asks for (a second only after the first was let go)."""
        business_profile = {"name": organization.display_name}
        if organization.website:
            business_profile["url"] = organization.website
        if organization.support_email:
            business_profile["support_email"] = organization.support_email
        if organization.support_phone:
            business_profile["support_phone"] = organization.support_phone
        if organization.industry_code:
            business_profile["mcc"] = organization.industry_code
        params = {
            "type": CONNECT_ACCOUNT_TYPE,
            "country": "US",
            "default_currency": organization.currency,
            "business_type": organization.business_type or "company",
            "business_profile": business_profile,
            "metadata": {METADATA_ORGANIZATION: str(organization.pk)},
        }
        if organization.support_email:
            params["email"] = organization.support_email
        company = {"name": organization.legal_name or organization.name}
        address = {
            "line1": organization.address_line1,
            "line2": organization.address_line2,
            "city": organization.city,
            "state": organization.state,
            "postal_code": organization.postal_code,
        }
        address = {key: value for key, value in address.items() if value}
        if address:
            company["address"] = {**address, "country": "US"}
        params["company"] = company
        if organization.statement_descriptor:
            params["settings"] = {"payments": {"statement_descriptor": organization.statement_descriptor}}
        with stripe_call("creating the clinic's Stripe account"):
            # The key makes a double submit return the same account instead of a second one.
            account = stripe_client().v1.accounts.create(
                params,
                {"idempotency_key": idempotency_key(row="organization", pk=organization.pk, action="account", attempt=attempt)},
            )
        return account_fact_from_account(as_dict(account), as_of=int(timezone.now().timestamp()))

    def account_retrieve(self, *, account_id: str) -> AccountFact:
        with stripe_call("reading the clinic's Stripe account"):
            account = stripe_client().v1.accounts.retrieve(account_id)
        return account_fact_from_account(as_dict(account), as_of=int(timezone.now().timestamp()))

    def account_link_create(
        self, *, organization: Organization, account_id: str, return_url: str, refresh_url: str, attempt: int
    ) -> str:
        """Stripe's onboarding address for the account. A link works once and briefly, so each
        onboarding the administrator starts is a new ``attempt``; a retry of one they never got
        the answer to is the same attempt, and Stripe hands back the same unused link."""
        with stripe_call("starting Stripe onboarding"):
            link = stripe_client().v1.account_links.create(
                {"account": account_id, "type": "account_onboarding", "return_url": return_url, "refresh_url": refresh_url},
                {
                    "idempotency_key": idempotency_key(
                        row="organization", pk=organization.pk, action="account_link", attempt=attempt
                    )
                },
            )
        return link.url


    # -- the clinic's profile, kept in step with LumaPay's (transactions.services.stripe_profile) --

    def account_profile_update(self, *, account_id: str, params: dict, idempotency_key: str) -> None:
        """Change the connected account's business details (Account update), on the account."""
        with stripe_call("updating the clinic's Stripe account"):
            stripe_client().v1.accounts.update(
                account_id, params, {"stripe_account": account_id, "idempotency_key": idempotency_key}
            )

    def account_person_save(self, *, account_id: str, person_id: str, params: dict, idempotency_key: str) -> str:
        """Create (``person_id`` "") or update one of the account's persons; returns its id."""
        options = {"stripe_account": account_id, "idempotency_key": idempotency_key}
        with stripe_call("updating an owner on the clinic's Stripe account"):
            if person_id:
                person = stripe_client().v1.accounts.persons.update(account_id, person_id, params, options)
            else:
                person = stripe_client().v1.accounts.persons.create(account_id, params, options)
        return as_dict(person)["id"]

    def account_person_delete(self, *, account_id: str, person_id: str) -> None:
        with stripe_call("removing an owner from the clinic's Stripe account"):
            stripe_client().v1.accounts.persons.delete(account_id, person_id, options={"stripe_account": account_id})
