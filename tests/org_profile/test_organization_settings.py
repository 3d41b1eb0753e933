"""The organization settings page: administrators edit who may refund or use cards on file and the
sign-in rules; every change is audited with old and new values; nobody else gets in. (The legal
and public information is the profile's: tests/org_profile/test_profile*.py.)"""

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
    assert 'name="legal_name"' not in body and 'name="support_email"' not in body
    assert f'<a href="{reverse("organization_profile")}">Organization profile</a>' in body
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
        "refund_roles": ["manager", "staff"],
        "saved_card_roles": [],
        "saved_card_charge_max": "$750.50",
    }

    response = client_for(administrator).post(URL, data, follow=True)

    assert response.redirect_chain == [(URL, 302)]
    assert _messages(response) == ["Saved the organization's settings."]
    assert _settings(organization) == {
        "name": "Riverside Family Medicine",
        "refund_roles": ["administrator", "manager", "staff"],
        "saved_card_roles": ["administrator"],
        "saved_card_charge_max_cents": 75050,
    }
    audit = AuditEvent.objects.get()
    assert (audit.organization_id, audit.action, audit.actor_type, audit.actor_user) == (
        organization.pk, "organization.updated", ActorType.STAFF, administrator
    )
    assert audit.changes == {
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
        ("idle_timeout_minutes", "4", "Enter a whole number of minutes from 5 to 60."),
        ("saved_card_charge_max", "", "Enter the most one charge of a card on file may take."),
        ("saved_card_charge_max", "0", "The amount must be more than $0.00."),
        ("saved_card_charge_max", "100000.01", "The amount cannot be more than $100,000.00."),
        ("saved_card_charge_max", "0.50", "Enter an amount between $1.00 and $100,000.00."),
    ],
)
def test_bad_values_are_explained_and_nothing_is_saved(client_for, organization, administrator, field, value, message):
    before = _settings(organization)

    response = client_for(administrator).post(URL, {**FORM, field: value, "refund_roles": ["manager", "staff"]})

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
                "idle_timeout_minutes": "90", "refund_roles": ["owner"],
                "saved_card_roles": ["clerk"], "saved_card_charge_max_cents": 10_000_001,
            },
        )  # fmt: skip

    assert error.value.errors == {
        "idle_timeout_minutes": ["Enter a whole number of minutes from 5 to 60."],
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

    response = client_for(other_administrator).post(URL, {**FORM, "saved_card_charge_max": "500", "refund_roles": ["staff"]})

    assert response.status_code == 302
    assert _settings(organization) == before
    lakeside = Organization.objects.get(pk=other_organization.pk)
    assert (lakeside.saved_card_charge_max_cents, lakeside.refund_roles) == (50000, ["administrator", "staff"])
    assert list(AuditEvent.objects.values_list("organization_id", flat=True)) == [other_organization.pk]


def test_an_administrator_elsewhere_is_a_manager_here(client_for, organization, other_organization, administrator):
    # The same person: administrator of Riverside, manager of Lakeside, working in Lakeside now.
    MembershipFactory(user=administrator, organization=other_organization, role=Role.MANAGER)
    client = client_for(administrator)
    client.post(reverse("organization_switch"), {"organization": other_organization.pk})
    before = (_settings(organization), _settings(other_organization))

    assert client.get(URL).status_code == 403
    assert client.post(URL, {**FORM, "saved_card_charge_max": "500"}).status_code == 403
    assert (_settings(organization), _settings(other_organization)) == before


def test_an_administrator_of_another_organization_cannot_use_the_service_here(organization, other_organization):
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user

    with pytest.raises(ApplicationError) as error:
        organization_update(organization=organization, actor=outsider, data={"saved_card_charge_max_cents": 100})

    assert error.value.message == "Only administrators can change the organization's settings."
    assert Organization.objects.get(pk=organization.pk).saved_card_charge_max_cents == 200000


def test_settings_outside_the_page_cannot_be_changed_through_the_service(organization, administrator):
    with pytest.raises(ApplicationError) as error:
        organization_update(
            organization=organization, actor=administrator, data={"payment_gateway": "stripe", "name": "X", "public_name": "Y"}
        )

    assert error.value.message == "These settings cannot be changed here: name, payment_gateway, public_name."
    assert Organization.objects.get(pk=organization.pk).payment_gateway == "sandbox"
    assert not AuditEvent.objects.exists()


def test_the_service_returns_the_organization_as_stored(organization, administrator):
    returned = organization_update(
        organization=organization, actor=administrator, data={"idle_timeout_minutes": " 30 ", "refund_roles": ["staff", "manager"]}
    )

    assert returned.pk == organization.pk
    assert (returned.idle_timeout_minutes, returned.refund_roles) == (30, ["administrator", "manager", "staff"])
    assert (organization.idle_timeout_minutes, organization.refund_roles) == (15, ["administrator", "manager"])
    assert AuditEvent.objects.get().changes == {
        "idle_timeout_minutes": [15, 30],
        "refund_roles": [["administrator", "manager"], ["administrator", "manager", "staff"]],
    }
