"""A clinic on Stripe: profile changes reach its connected account (only what changed, on the
account's own header, never a patient's data), the profile shows what Stripe still needs with
its deadline from account.updated, and account.application.deauthorized disconnects the account,
tells the administrators and stops Stripe actions until it is connected again. localstripe has
no Connect: accounts and persons are FakeConnect's (tests/stripe_support.py). Here, beside the
Stripe fixtures (tests/transactions/conftest.py: localstripe runs once per test session); the
rest of the profile's tests are in tests/org_profile/."""

import datetime
import logging

import pytest
from django.core import mail
from django.urls import reverse

from lumapay.dates import format_datetime
from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile import (
    organization_legal_update,
    organization_person_add,
    organization_person_change,
    organization_person_remove,
    organization_public_update,
)
from transactions.gateways.base import GatewayError
from transactions.gateways.stripe.client import account_of, idempotency_key
from transactions.services.stripe_connect import stripe_onboarding_start

from ..stripe_support import event_receive, stripe_event
from ..org_profile.profile_support import EIN, PERSON

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


def test_a_public_change_sends_only_what_changed_to_the_connected_account(stripe_world, stripe_organization, administrator, on_commit):
    account = stripe_organization.stripe_account_id

    on_commit(lambda: organization_public_update(
        organization=stripe_organization, actor=administrator,
        data={"public_name": "Riverside Family Care", "support_phone": "(312) 555-0188", "support_email": stripe_organization.support_email,
              "statement_descriptor": "RIVERSIDE CARE"},
    ))  # fmt: skip

    (request,) = stripe_world.http.sent("POST", f"/v1/accounts/{account}")
    assert request.account == account
    assert request.params == {
        "business_profile": {"name": "Riverside Family Care", "support_phone": "+13125550188"},
        "settings": {"payments": {"statement_descriptor": "RIVERSIDE CARE"}},
    }
    changed = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_PUBLIC_CHANGED)
    assert request.idempotency_key == idempotency_key(
        row="audit_event", pk=changed.pk, action="account_profile", content=request.params
    )
    pushed = AuditEvent.objects.get(action=AuditAction.STRIPE_ACCOUNT_PROFILE_PUSHED)
    assert (pushed.actor_type, pushed.changes) == (
        ActorType.SYSTEM, {"stripe_account_id": account, "fields": ["public_name", "statement_descriptor", "support_phone"]}
    )
    assert stripe_world.connect.accounts[account]["settings"]["payments"]["statement_descriptor"] == "RIVERSIDE CARE"


def test_a_legal_change_sends_the_company_and_the_ein_in_full_but_audits_it_masked(stripe_world, stripe_organization, administrator, on_commit):
    account = stripe_organization.stripe_account_id

    on_commit(lambda: organization_legal_update(
        organization=stripe_organization, actor=administrator,
        data={"legal_name": "Riverside Family Medicine, PLLC", "business_type": "company", "tax_id": EIN, "postal_code": "62702",
              "industry_code": "8011", "city": stripe_organization.city},
    ))  # fmt: skip

    (request,) = stripe_world.http.sent("POST", f"/v1/accounts/{account}")
    assert request.account == account
    assert request.params == {
        "business_type": "company",
        "company": {"name": "Riverside Family Medicine, PLLC", "tax_id": EIN.replace("-", ""), "address": {"postal_code": "62702", "country": "US"}},
        "business_profile": {"mcc": "8011"},
    }
    for event in AuditEvent.objects.all():
        assert "4815162" not in str(event.changes)


def test_nothing_is_sent_before_the_change_commits_or_when_nothing_changed(stripe_world, stripe_organization, administrator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        organization_public_update(organization=stripe_organization, actor=administrator, data={"public_name": "Riverside Care"})
    assert stripe_world.http.sent("POST") == []
    assert len(callbacks) == 1

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        organization_public_update(organization=stripe_organization, actor=administrator, data={"public_name": ""})
        organization_public_update(organization=stripe_organization, actor=administrator, data={"public_name": ""})
    assert len(stripe_world.http.sent("POST")) == 1


def test_a_sandbox_clinic_sends_nothing_to_stripe(stripe_world, organization, administrator, on_commit):
    on_commit(lambda: organization_public_update(organization=organization, actor=administrator, data={"public_name": "Riverside Care"}))

    assert stripe_world.http.recorded == []
    assert not AuditEvent.objects.filter(action=AuditAction.STRIPE_ACCOUNT_PROFILE_PUSHED).exists()


def test_owners_are_created_then_updated_with_only_what_changed_then_removed(stripe_world, stripe_organization, administrator, on_commit):
    account = stripe_organization.stripe_account_id

    person = on_commit(lambda: organization_person_add(organization=stripe_organization, actor=administrator, data=PERSON))

    (create,) = stripe_world.http.sent("POST", f"/v1/accounts/{account}/persons")
    assert create.account == account
    # Keyed by the person, not the change: a create retried after an edit (its answer lost) can
    # never make a second person at Stripe.
    assert create.idempotency_key.endswith(f":organization_person:{OrganizationPerson.objects.get().pk}:account_person_create:1")
    assert create.params == {
        "first_name": "Priya", "last_name": "Natarajan", "email": "priya@riverside.example", "phone": "+13125550131",
        "dob": {"day": "18", "month": "3", "year": "1974"}, "ssn_last_4": "0418",
        "address": {"line1": "2101 Monument Avenue", "city": "Chicago", "state": "IL", "postal_code": "60601-1234", "country": "US"},
        "relationship": {"title": "Medical Director", "owner": "true", "percent_ownership": "60.00", "representative": "true"},
    }  # fmt: skip
    person.refresh_from_db()
    assert person.stripe_person_id in stripe_world.connect.persons[account]

    on_commit(lambda: organization_person_change(
        organization=stripe_organization, actor=administrator, person_id=person.pk, data={**PERSON, "title": "CEO", "date_of_birth": "", "ssn_last4": ""}
    ))  # fmt: skip

    update = stripe_world.http.sent("POST", f"/v1/accounts/{account}/persons/{person.stripe_person_id}")[-1]
    assert update.account == account
    assert update.params == {"relationship": {"title": "CEO"}}

    other = on_commit(lambda: organization_person_add(
        organization=stripe_organization, actor=administrator, data={**PERSON, "first_name": "Daniel", "is_owner": False, "ownership_percent": ""}
    ))  # fmt: skip
    on_commit(lambda: organization_person_remove(organization=stripe_organization, actor=administrator, person_id=person.pk))

    (delete,) = stripe_world.http.sent("DELETE")
    assert delete.path == f"/v1/accounts/{account}/persons/{person.stripe_person_id}" and delete.account == account
    assert list(stripe_world.connect.persons[account]) == [OrganizationPerson.objects.get(pk=other.pk).stripe_person_id]
    pushed = list(AuditEvent.objects.filter(action=AuditAction.STRIPE_ACCOUNT_PROFILE_PUSHED).order_by("id").values_list("changes", flat=True))
    assert len(pushed) == 4
    assert pushed[1] == {"stripe_account_id": account, "person": person.pk, "fields": ["title"]}
    assert pushed[3] == {"stripe_account_id": account, "removed_person": person.stripe_person_id}
    for request in stripe_world.http.recorded:
        assert "lumapay_patient" not in request.text()


def test_account_updated_requirements_and_deadline_are_shown_on_the_profile(
    client_for, stripe_world, stripe_organization, administrator, on_commit
):
    account = dict(stripe_world.connect.accounts[stripe_organization.stripe_account_id])
    deadline = int(datetime.datetime(2031, 3, 14, 17, 0, tzinfo=datetime.UTC).timestamp())
    account["requirements"] = {
        **account["requirements"],
        "currently_due": ["company.tax_id", "representative.dob.day", "external_account"],
        "past_due": ["external_account"],
        "eventually_due": ["company.tax_id", "business_profile.url", "representative.dob.day", "external_account"],
        "current_deadline": deadline,
    }

    on_commit(lambda: event_receive(stripe_event("account.updated", account, account=account["id"], created=1_900_000_100)))

    row = Organization.objects.get(pk=stripe_organization.pk)
    assert row.stripe_requirements == {
        "currently_due": ["company.tax_id", "external_account", "representative.dob.day"],
        "past_due": ["external_account"],
        "eventually_due": ["business_profile.url", "company.tax_id", "external_account", "representative.dob.day"],
    }
    assert row.stripe_current_deadline == datetime.datetime(2031, 3, 14, 17, 0, tzinfo=datetime.UTC)
    body = client_for(administrator).get(reverse("organization_profile")).content.decode()
    # In the clinic's time zone (New York: 17:00 UTC is noon there).
    assert f"Stripe needs more information by {format_datetime(row.stripe_current_deadline, 'America/New_York')}." in body
    assert "Some of it is past due" in body
    past_due = body.split('id="stripe-past-due"')[1].split("</ul>")[0]
    due = body.split('id="stripe-currently-due"')[1].split("</ul>")[0]
    later = body.split('id="stripe-eventually-due"')[1].split("</ul>")[0]
    assert "A bank account for payouts" in past_due
    assert "The clinic&#x27;s tax ID (EIN)" in due and "A representative&#x27;s date of birth" in due and "bank account" not in due
    assert "The clinic&#x27;s website" in later and "tax ID" not in later


def test_deauthorization_disconnects_tells_the_administrators_and_stops_stripe(
    client_for, stripe_world, stripe_organization, administrator, manager, on_commit, settings
):
    account = stripe_organization.stripe_account_id
    application = {"id": "ca_platform", "object": "application", "name": "LumaPay"}
    event = stripe_event("account.application.deauthorized", application, account=account, created=1_900_000_200)

    on_commit(lambda: event_receive(event))
    on_commit(lambda: event_receive(stripe_event("account.application.deauthorized", application, account=account, created=1_900_000_300)))

    row = Organization.objects.get(pk=stripe_organization.pk)
    assert row.stripe_disconnected_at == datetime.datetime.fromtimestamp(1_900_000_200, tz=datetime.UTC)
    assert (row.stripe_charges_enabled, row.stripe_payouts_enabled, row.stripe_connected) == (False, False, False)
    disconnected = AuditEvent.objects.get(action=AuditAction.STRIPE_ACCOUNT_DISCONNECTED)
    assert (disconnected.actor_type, disconnected.changes["stripe_account_id"]) == (ActorType.GATEWAY, account)
    (message,) = mail.outbox
    assert message.to == [administrator.email]
    assert "disconnected" in message.subject
    # Administrators see a banner on every staff page; managers do not.
    banner = "Stripe account was disconnected from LumaPay.</strong>"
    assert banner in client_for(administrator).get(reverse("transactions:dashboard")).content.decode()
    assert banner not in client_for(manager).get(reverse("transactions:dashboard")).content.decode()
    stripe_page = client_for(administrator).get(reverse("transactions:stripe_connect")).content.decode()
    assert "Disconnected" in stripe_page and "Connect with Stripe again" in stripe_page
    assert "Take payments through Stripe" not in stripe_page
    # Stripe actions stop: no charges, no pushes.
    with pytest.raises(GatewayError, match="disconnected"):
        account_of(row)
    stripe_world.http.recorded.clear()
    on_commit(lambda: organization_public_update(organization=row, actor=administrator, data={"public_name": "Riverside Care"}))
    assert stripe_world.http.recorded == []
    # A later account.updated from the old account changes nothing.
    old = dict(stripe_world.connect.accounts[account], charges_enabled=True)
    on_commit(lambda: event_receive(stripe_event("account.updated", old, account=account, created=1_900_000_400)))
    assert Organization.objects.get(pk=row.pk).stripe_charges_enabled is False


def test_connecting_again_after_a_disconnection_makes_a_new_account(stripe_world, stripe_organization, administrator, on_commit):
    old = stripe_organization.stripe_account_id
    event = stripe_event("account.application.deauthorized", {"id": "ca_x", "object": "application"}, account=old, created=1_900_000_200)
    on_commit(lambda: event_receive(event))
    row = Organization.objects.get(pk=stripe_organization.pk)

    stripe_onboarding_start(organization=row, actor=administrator, return_url="https://x.example/r", refresh_url="https://x.example/f")

    row.refresh_from_db()
    assert row.stripe_account_id != old and row.stripe_connected
    created = AuditEvent.objects.get(action=AuditAction.STRIPE_ACCOUNT_CREATED)
    assert created.changes == {"stripe_account_id": [old, row.stripe_account_id]}


def test_the_push_logs_no_secret_even_with_debug_logging(stripe_world, stripe_organization, administrator, on_commit, caplog):
    # LOG_LEVEL=DEBUG sets the root logger to DEBUG; the Stripe library's "Post details" (request
    # bodies) stay out because lumapay/settings.py keeps its logger at INFO.
    caplog.set_level(logging.DEBUG)

    on_commit(lambda: organization_legal_update(organization=stripe_organization, actor=administrator, data={"tax_id": EIN}))
    on_commit(lambda: organization_person_add(organization=stripe_organization, actor=administrator, data=PERSON))

    assert len(stripe_world.http.sent("POST")) == 2
    assert "Request to Stripe api" in caplog.text  # the library did log, at INFO
    for secret in ("4815162", "274815162", "1974", "0418"):
        assert secret not in caplog.text


def test_a_new_connected_account_starts_with_the_profile(stripe_world, organization, administrator):
    organization.business_type = "non_profit"
    organization.industry_code = "8099"
    organization.statement_descriptor = "RIVERSIDE CARE"
    organization.save()

    stripe_onboarding_start(organization=organization, actor=administrator, return_url="https://x.example/r", refresh_url="https://x.example/f")

    (create,) = stripe_world.http.sent("POST", "/v1/accounts")
    assert create.params["business_type"] == "non_profit"
    assert create.params["business_profile"]["mcc"] == "8099"
    assert create.params["settings"] == {"payments": {"statement_descriptor": "RIVERSIDE CARE"}}


def test_a_push_retried_after_the_values_changed_sends_them_under_a_new_key(stripe_world, stripe_organization, administrator, on_commit):
    from transactions.services.stripe_profile import stripe_account_profile_push

    account = stripe_organization.stripe_account_id
    on_commit(lambda: organization_public_update(
        organization=stripe_organization, actor=administrator,
        data={"public_name": "Riverside Family Care", "support_phone": stripe_organization.support_phone,
              "support_email": stripe_organization.support_email, "statement_descriptor": ""},
    ))  # fmt: skip
    changed = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_PUBLIC_CHANGED)
    (first,) = stripe_world.http.sent("POST", f"/v1/accounts/{account}")

    # The same push again (a retry whose answer was lost), same values: the same key.
    stripe_account_profile_push(organization_id=stripe_organization.pk, fields=["public_name"], audit_event_id=changed.pk)
    again = stripe_world.http.sent("POST", f"/v1/accounts/{account}")[-1]
    assert again.idempotency_key == first.idempotency_key
    # The name changed again before the retry: the retry sends the new name under another key
    # (Stripe refuses a key reused with other parameters), and nothing of the name is in the key.
    Organization.objects.filter(pk=stripe_organization.pk).update(public_name="Riverside Health")
    stripe_account_profile_push(organization_id=stripe_organization.pk, fields=["public_name"], audit_event_id=changed.pk)
    changed_again = stripe_world.http.sent("POST", f"/v1/accounts/{account}")[-1]
    assert changed_again.params == {"business_profile": {"name": "Riverside Health"}}
    assert changed_again.idempotency_key != first.idempotency_key
    assert changed_again.idempotency_key.startswith(first.idempotency_key.rsplit(":", 1)[0] + ":")
    assert "Riverside" not in changed_again.idempotency_key


def test_owners_sent_to_a_disconnected_account_are_created_again_on_the_new_one(stripe_world, stripe_organization, administrator, on_commit):
    old = stripe_organization.stripe_account_id
    person = on_commit(lambda: organization_person_add(organization=stripe_organization, actor=administrator, data=PERSON))
    person.refresh_from_db()
    assert person.stripe_person_id in stripe_world.connect.persons[old]

    event = stripe_event("account.application.deauthorized", {"id": "ca_x", "object": "application"}, account=old, created=1_900_000_200)
    on_commit(lambda: event_receive(event))
    row = Organization.objects.get(pk=stripe_organization.pk)
    stripe_onboarding_start(organization=row, actor=administrator, return_url="https://x.example/r", refresh_url="https://x.example/f")
    row.refresh_from_db()
    person.refresh_from_db()
    assert person.stripe_person_id == ""

    on_commit(lambda: organization_person_change(
        organization=row, actor=administrator, person_id=person.pk, data={**PERSON, "title": "CEO"}
    ))  # fmt: skip
    (create,) = stripe_world.http.sent("POST", f"/v1/accounts/{row.stripe_account_id}/persons")
    assert create.params["first_name"] == "Priya" and create.params["relationship"]["title"] == "CEO"
    person.refresh_from_db()
    assert person.stripe_person_id in stripe_world.connect.persons[row.stripe_account_id]
