"""Settings → Stripe: an administrator connects the clinic's Stripe account (Connect onboarding),
sees what Stripe still needs, and account.updated events keep it current. localstripe has no
Connect: accounts and account links come from Stripe's own example objects (FakeConnect)."""

import pytest
from django.urls import reverse

from lumapay.models import AuditEvent
from org_profile.models import Organization
from transactions.enums import GatewayEventStatus
from transactions.gateways.stripe.client import idempotency_key
from transactions.models import GatewayEvent

from ..stripe_support import event_receive, stripe_clinic, stripe_event

pytestmark = pytest.mark.django_db

URL = reverse("transactions:stripe_connect")


@pytest.fixture
def clinic(organization):
    organization.legal_name = "Riverside Family Medicine PLLC"
    organization.website = "https://riverside.example"
    # Not in the factory patients' +1217555…. range: the PHI check would rightly flag a patient's number.
    organization.support_phone = "+13125550199"
    organization.save()
    return organization


def test_the_page_says_the_clinic_is_not_connected(client_for, administrator, stripe_world, clinic):
    response = client_for(administrator).get(URL)

    assert response.status_code == 200
    text = response.content.decode()
    assert "Not connected" in text and "Connect with Stripe" in text
    assert stripe_world.http.recorded == []


def test_connecting_creates_the_account_with_business_information_only_and_opens_onboarding(
    client_for, administrator, stripe_world, clinic, patient
):
    response = client_for(administrator).post(URL, {"start": ""})

    clinic.refresh_from_db()
    (create,) = stripe_world.http.sent("POST", "/v1/accounts")
    (link_request,) = stripe_world.http.sent("POST", "/v1/account_links")
    (link,) = stripe_world.connect.links
    assert response.status_code == 302
    assert response["Location"] == link["url"]
    assert create.account is None  # made by the platform, not on behalf of an account
    assert create.headers["Idempotency-Key"] == idempotency_key(row="organization", pk=clinic.pk, action="account")
    assert create.params == {
        "type": "standard",
        "country": "US",
        "default_currency": "usd",
        "business_type": "company",
        "business_profile": {
            "name": "Riverside Family Medicine",
            "url": "https://riverside.example",
            "support_email": "billing@riverside.example",
            "support_phone": "+13125550199",
        },
        "metadata": {"lumapay_organization_id": str(clinic.pk)},
        "email": "billing@riverside.example",
        "company": {
            "name": "Riverside Family Medicine PLLC",
            "address": {"line1": "120 Main Street", "city": "Springfield", "state": "IL", "postal_code": "62701", "country": "US"},
        },
    }
    assert link_request.params == {
        "account": clinic.stripe_account_id,
        "type": "account_onboarding",
        "return_url": "http://testserver/settings/stripe/?onboarding=returned",
        "refresh_url": "http://testserver/settings/stripe/?onboarding=refresh",
    }
    assert clinic.stripe_account_id in stripe_world.connect.accounts
    assert (clinic.stripe_charges_enabled, clinic.stripe_payouts_enabled, clinic.stripe_details_submitted) == (False, False, False)
    assert "external_account" in clinic.stripe_requirements_due
    assert list(AuditEvent.objects.filter(organization=clinic).order_by("id").values_list("action", "actor_user")) == [
        ("stripe.account_created", administrator.pk),
        ("stripe.onboarding_started", administrator.pk),
    ]
    assert clinic.payment_gateway == "sandbox"  # payments move only when the administrator says so


def test_the_page_shows_what_stripe_still_needs(client_for, administrator, stripe_world, clinic):
    client = client_for(administrator)
    client.post(URL, {"start": ""})

    text = client.get(URL).content.decode()

    assert "Onboarding not finished" in text
    assert "A bank account for payouts" in text
    assert "Acceptance of Stripe&#x27;s terms of service" in text
    assert text.count("Acceptance of Stripe&#x27;s terms of service") == 1
    assert "Continue onboarding" in text


def test_coming_back_from_onboarding_reads_the_account_from_stripe(client_for, administrator, stripe_world, clinic):
    client = client_for(administrator)
    client.post(URL, {"start": ""})
    clinic.refresh_from_db()
    stripe_world.connect.onboard(clinic.stripe_account_id)

    response = client.get(URL, {"onboarding": "returned"})

    clinic.refresh_from_db()
    text = response.content.decode()
    assert (clinic.stripe_charges_enabled, clinic.stripe_payouts_enabled, clinic.stripe_requirements_due) == (True, True, [])
    assert "Connected" in text and "Nothing: Stripe has what it needs for now." in text
    assert "Take payments through Stripe" in text
    (read,) = stripe_world.http.sent("GET", f"/v1/accounts/{clinic.stripe_account_id}")
    changed = AuditEvent.objects.get(action="stripe.account_updated")
    assert changed.changes["stripe_charges_enabled"] == [False, True]


def test_an_expired_link_makes_a_new_one_and_a_second_start_reuses_the_account(client_for, administrator, stripe_world, clinic):
    client = client_for(administrator)
    client.post(URL, {"start": ""})

    refreshed = client.get(URL, {"onboarding": "refresh"})
    again = client.post(URL, {"start": ""})

    assert len(stripe_world.http.sent("POST", "/v1/accounts")) == 1
    assert [refreshed["Location"], again["Location"]] == [link["url"] for link in stripe_world.connect.links[1:]]
    assert len(stripe_world.connect.links) == 3


def test_taking_payments_through_stripe_needs_charges_enabled(client_for, administrator, stripe_world, clinic):
    stripe_clinic(stripe_world, clinic, onboarded=False)
    clinic.payment_gateway = "sandbox"
    clinic.save()
    client = client_for(administrator)

    refused = client.post(URL, {"use_stripe": ""}, follow=True)
    clinic.refresh_from_db()
    assert clinic.payment_gateway == "sandbox"
    assert "finish onboarding first" in refused.content.decode()

    Organization.objects.filter(pk=clinic.pk).update(stripe_charges_enabled=True)
    client.post(URL, {"use_stripe": ""})
    clinic.refresh_from_db()
    assert clinic.payment_gateway == "stripe"
    assert AuditEvent.objects.get(action="organization.payment_gateway_changed").changes == {
        "payment_gateway": ["sandbox", "stripe"]
    }


@pytest.mark.parametrize("role", ["manager", "staff_user"])
def test_only_administrators_may_manage_the_stripe_account(client_for, stripe_world, clinic, role, request):
    client = client_for(request.getfixturevalue(role))

    assert client.get(URL).status_code == 403
    assert client.post(URL, {"start": ""}).status_code == 403
    assert stripe_world.http.recorded == []
    clinic.refresh_from_db()
    assert clinic.stripe_account_id is None


def test_without_stripe_keys_the_page_says_so_and_connects_nothing(client_for, administrator, clinic, settings):
    settings.STRIPE_SECRET_KEY = ""
    client = client_for(administrator)

    assert "Stripe is not configured on this server" in client.get(URL).content.decode()
    response = client.post(URL, {"start": ""}, follow=True)
    assert "Stripe is not configured on this server: set STRIPE_SECRET_KEY." in response.content.decode()


def test_account_updated_events_keep_the_clinic_current_and_an_older_one_changes_nothing(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    account = dict(stripe_world.connect.accounts[stripe_organization.stripe_account_id])
    account["payouts_enabled"] = False
    account["requirements"] = {**account["requirements"], "currently_due": ["external_account"], "disabled_reason": "requirements.past_due"}
    newer = stripe_event("account.updated", account, account=account["id"], created=1_900_000_100)
    older = stripe_event(
        "account.updated", stripe_world.connect.accounts[account["id"]], account=account["id"], created=1_900_000_000
    )

    with django_capture_on_commit_callbacks(execute=True):
        event_receive(newer)
        event_receive(older)

    stripe_organization.refresh_from_db()
    assert (
        stripe_organization.stripe_charges_enabled,
        stripe_organization.stripe_payouts_enabled,
        stripe_organization.stripe_requirements_due,
        stripe_organization.stripe_disabled_reason,
        int(stripe_organization.stripe_account_updated_at.timestamp()),
    ) == (True, False, ["external_account"], "requirements.past_due", 1_900_000_100)
    assert list(GatewayEvent.objects.values_list("status", "organization_id")) == [
        (GatewayEventStatus.PROCESSED, stripe_organization.pk)
    ] * 2
    assert AuditEvent.objects.get(action="stripe.account_updated").changes == {
        "stripe_payouts_enabled": [True, False],
        "stripe_requirements_due": [[], ["external_account"]],
        "stripe_disabled_reason": ["", "requirements.past_due"],
        "stripe_requirements": [{}, {"currently_due": ["external_account"], "past_due": [], "eventually_due": []}],
    }
