"""The organization settings page: administrators edit the legal and public-facing information and
who may refund; every change is audited with old and new values; nobody else gets in."""

import pytest
from django.urls import reverse

from lumapay.errors import ApplicationError
from lumapay.models import ActorType, AuditEvent
from org_profile.enums import Role
from org_profile.models import Organization
from org_profile.services import OrganizationSettingsInvalid, organization_update

from ..factories import MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/accounts/organization/"

FORM = {
    "legal_name": "Riverside Family Medicine PLLC",
    "tax_id_last4": "",
    "address_line1": "120 Main Street",
    "address_line2": "",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "public_name": "",
    "support_phone": "+12175550100",
    "support_email": "billing@riverside.example",
    "website": "",
    "statement_descriptor": "",
    "refund_roles": ["manager"],
    "saved_card_roles": ["manager"],
    "saved_card_charge_max": "2,000.00",
    # as the page sends them: the groups of role checkboxes it showed
    "role_groups_shown": ["refund_roles", "saved_card_roles"],
}


def _settings(organization) -> dict:
    row = Organization.objects.get(pk=organization.pk)
    fields = [field for field in FORM if field not in ("saved_card_charge_max", "role_groups_shown")]
    return {field: getattr(row, field) for field in [*fields, "saved_card_charge_max_cents", "name"]}


def _messages(response):
    return [str(message) for message in response.context["messages"]]


def test_the_url_is_named():
    assert reverse("organization_settings") == URL


def test_an_administrator_sees_the_current_settings(client_for, organization, administrator):
    response = client_for(administrator).get(URL)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="legal_name" id="id_legal_name" value="Riverside Family Medicine PLLC"' in body
    assert 'name="support_email" id="id_support_email" value="billing@riverside.example"' in body
    assert '<input type="checkbox" checked disabled> Administrators (always)' in body
    assert 'name="refund_roles" value="manager" id="id_refund_roles_0" checked' in body
    assert 'name="refund_roles" value="staff" id="id_refund_roles_1">' in body
    assert 'name="saved_card_roles" value="manager" id="id_saved_card_roles_0" checked' in body
    assert 'name="saved_card_roles" value="staff" id="id_saved_card_roles_1">' in body
    assert 'name="saved_card_charge_max" id="id_saved_card_charge_max" value="2,000.00"' in body
    assert f'<a href="{URL}" aria-current="page">Organization</a>' in body


def test_an_administrator_edits_everything_and_the_change_is_audited(client_for, organization, administrator):
    data = {
        **FORM,
        "legal_name": "Riverside Family Medicine, PLLC",
        "tax_id_last4": "6789",
        "address_line1": "200 Oak Avenue",
        "address_line2": "Suite 4",
        "city": "Chicago",
        "state": "IL",
        "postal_code": "60601",
        "public_name": "Riverside Family Care",
        "support_phone": "+1 (312) 555-0188",
        "support_email": "help@riverside.example",
        "website": "riverside.example",
        "statement_descriptor": "RIVERSIDE CARE 2",
        "refund_roles": ["manager", "staff"],
        "saved_card_roles": [],
        "saved_card_charge_max": "$750.50",
    }

    response = client_for(administrator).post(URL, data, follow=True)

    assert response.redirect_chain == [(URL, 302)]
    assert _messages(response) == ["Saved the organization's settings."]
    assert _settings(organization) == {
        "name": "Riverside Family Medicine",
        "legal_name": "Riverside Family Medicine, PLLC",
        "tax_id_last4": "6789",
        "address_line1": "200 Oak Avenue",
        "address_line2": "Suite 4",
        "city": "Chicago",
        "state": "IL",
        "postal_code": "60601",
        "public_name": "Riverside Family Care",
        "support_phone": "+1 (312) 555-0188",
        "support_email": "help@riverside.example",
        "website": "https://riverside.example",
        "statement_descriptor": "RIVERSIDE CARE 2",
        "refund_roles": ["administrator", "manager", "staff"],
        "saved_card_roles": ["administrator"],
        "saved_card_charge_max_cents": 75050,
    }
    audit = AuditEvent.objects.get()
    assert (audit.organization_id, audit.action, audit.actor_type, audit.actor_user) == (
        organization.pk, "organization.updated", ActorType.STAFF, administrator
    )
    assert audit.changes == {
        "legal_name": ["Riverside Family Medicine PLLC", "Riverside Family Medicine, PLLC"],
        "tax_id_last4": ["", "6789"],
        "address_line1": ["120 Main Street", "200 Oak Avenue"],
        "address_line2": ["", "Suite 4"],
        "city": ["Springfield", "Chicago"],
        "postal_code": ["62701", "60601"],
        "public_name": ["", "Riverside Family Care"],
        "support_phone": ["+12175550100", "+1 (312) 555-0188"],
        "support_email": ["billing@riverside.example", "help@riverside.example"],
        "website": ["", "https://riverside.example"],
        "statement_descriptor": ["", "RIVERSIDE CARE 2"],
        "refund_roles": [["administrator", "manager"], ["administrator", "manager", "staff"]],
        "saved_card_roles": [["administrator", "manager"], ["administrator"]],
        "saved_card_charge_max_cents": [200000, 75050],
    }


def test_unticking_managers_leaves_administrators_alone(client_for, organization, administrator):
    response = client_for(administrator).post(URL, {**FORM, "refund_roles": []})

    assert response.status_code == 302
    assert _settings(organization)["refund_roles"] == ["administrator"]
    assert AuditEvent.objects.get().changes == {"refund_roles": [["administrator", "manager"], ["administrator"]]}
    organization.refresh_from_db()
    assert organization.role_may_refund(Role.ADMINISTRATOR) and not organization.role_may_refund(Role.MANAGER)


def test_saving_without_a_change_writes_no_audit(client_for, organization, administrator):
    response = client_for(administrator).post(URL, FORM, follow=True)

    assert _messages(response) == ["Nothing changed."]
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("statement_descriptor", "RIVERSIDE FAMILY MEDICINE", "Use at most 22 characters (this has 25)."),
        ("statement_descriptor", "RIVERSIDE*CLINIC", "Use only letters (A–Z), digits and spaces."),
        ("statement_descriptor", "Clínica Riverside", "Use only letters (A–Z), digits and spaces."),
        ("statement_descriptor", "RFM", "Use at least 5 characters."),
        ("statement_descriptor", "2175550100", "Include at least one letter."),
        ("tax_id_last4", "12a4", "Enter exactly the last 4 digits of the tax ID."),
        ("tax_id_last4", "123", "Enter exactly the last 4 digits of the tax ID."),
        ("support_email", "billing at riverside", "Enter a valid email address."),
        ("website", "https://not a site", "Enter a valid URL."),
        ("support_phone", "call the front desk", "Enter a phone number, such as +1 217 555 0100."),
        ("legal_name", "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
        ("saved_card_charge_max", "", "Enter the most one charge of a card on file may take."),
        ("saved_card_charge_max", "0", "The amount must be more than $0.00."),
        ("saved_card_charge_max", "100000.01", "The amount cannot be more than $100,000.00."),
        ("saved_card_charge_max", "0.50", "Enter an amount between $1.00 and $100,000.00."),
    ],
)
def test_bad_values_are_explained_and_nothing_is_saved(client_for, organization, administrator, field, value, message):
    before = _settings(organization)

    response = client_for(administrator).post(URL, {**FORM, field: value, "city": "Chicago"})

    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert "Some settings need fixing: nothing was saved." in response.content.decode()
    assert _settings(organization) == before
    assert not AuditEvent.objects.exists()


def test_every_problem_is_reported_at_once(organization, administrator):
    before = _settings(organization)

    with pytest.raises(OrganizationSettingsInvalid) as error:
        organization_update(
            organization=organization,
            actor=administrator,
            data={
                "statement_descriptor": "A*B", "tax_id_last4": "x", "refund_roles": ["owner"], "city": "Chicago",
                "saved_card_roles": ["clerk"], "saved_card_charge_max_cents": 10_000_001,
            },
        )  # fmt: skip

    assert error.value.errors == {
        "statement_descriptor": ["Use only letters (A–Z), digits and spaces."],
        "tax_id_last4": ["Enter exactly the last 4 digits of the tax ID."],
        "refund_roles": ["Unknown role: owner."],
        "saved_card_roles": ["Unknown role: clerk."],
        "saved_card_charge_max_cents": ["Enter an amount between $1.00 and $100,000.00."],
    }
    assert _settings(organization) == before
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_other_roles_are_refused(client_for, organization, location, role):
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user
    client = client_for(user)
    before = _settings(organization)

    assert client.get(URL).status_code == 403
    assert client.post(URL, {**FORM, "refund_roles": ["manager", "staff"]}).status_code == 403
    with pytest.raises(ApplicationError) as error:
        organization_update(organization=organization, actor=user, data={"refund_roles": ["manager", "staff"]})
    assert error.value.message == "Only administrators can change the organization's settings."
    assert _settings(organization) == before
    assert not AuditEvent.objects.exists()
    assert f'href="{URL}"' not in client.get(reverse("transactions:dashboard")).content.decode()


def test_signed_out_visitors_go_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_an_administrator_changes_only_their_own_organization(client_for, organization, other_organization):
    other_administrator = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    before = _settings(organization)

    response = client_for(other_administrator).post(URL, {**FORM, "public_name": "Lakeside Kids", "refund_roles": ["staff"]})

    assert response.status_code == 302
    assert _settings(organization) == before
    lakeside = Organization.objects.get(pk=other_organization.pk)
    assert (lakeside.public_name, lakeside.refund_roles) == ("Lakeside Kids", ["administrator", "staff"])
    assert list(AuditEvent.objects.values_list("organization_id", flat=True)) == [other_organization.pk]


def test_an_administrator_elsewhere_is_a_manager_here(client_for, organization, other_organization, administrator):
    # The same person: administrator of Riverside, manager of Lakeside, working in Lakeside now.
    MembershipFactory(user=administrator, organization=other_organization, role=Role.MANAGER)
    client = client_for(administrator)
    client.post(reverse("organization_switch"), {"organization": other_organization.pk})
    before = (_settings(organization), _settings(other_organization))

    assert client.get(URL).status_code == 403
    assert client.post(URL, {**FORM, "public_name": "Changed"}).status_code == 403
    assert (_settings(organization), _settings(other_organization)) == before


def test_an_administrator_of_another_organization_cannot_use_the_service_here(organization, other_organization):
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user

    with pytest.raises(ApplicationError) as error:
        organization_update(organization=organization, actor=outsider, data={"public_name": "Taken over"})

    assert error.value.message == "Only administrators can change the organization's settings."
    assert Organization.objects.get(pk=organization.pk).public_name == ""


def test_settings_outside_the_page_cannot_be_changed_through_the_service(organization, administrator):
    with pytest.raises(ApplicationError) as error:
        organization_update(organization=organization, actor=administrator, data={"payment_gateway": "stripe", "name": "X"})

    assert error.value.message == "These settings cannot be changed here: name, payment_gateway."
    assert Organization.objects.get(pk=organization.pk).payment_gateway == "sandbox"
    assert not AuditEvent.objects.exists()


def test_the_service_returns_the_organization_as_stored(organization, administrator):
    returned = organization_update(
        organization=organization, actor=administrator, data={"statement_descriptor": "  RIVERSIDE   CARE ", "refund_roles": ["staff", "manager"]}
    )

    assert returned.pk == organization.pk
    assert (returned.statement_descriptor, returned.refund_roles) == (
        "RIVERSIDE CARE", ["administrator", "manager", "staff"]
    )
    assert (organization.statement_descriptor, organization.refund_roles) == ("", ["administrator", "manager"])
    assert AuditEvent.objects.get().changes == {
        "statement_descriptor": ["", "RIVERSIDE CARE"],
        "refund_roles": [["administrator", "manager"], ["administrator", "manager", "staff"]],
    }
