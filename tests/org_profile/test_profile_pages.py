"""The organization profile's pages: administrators edit the legal information (after typing
their password again), what patients see, and the owners and controller. The EIN, dates of birth
and SSN digits are stored encrypted (the raw PostgreSQL row holds none of their digits), shown
masked or as "on file", never put back in a form, audited masked and never logged."""

import json
import logging
import time

import pytest
from django.urls import reverse

from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from org_profile.enums import Role
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile_secrets import secret_decrypt
from org_profile.sessions import AUTHENTICATED_AT

from ..factories import MembershipFactory
from .profile_support import EIN, PERSON, raw_row

pytestmark = pytest.mark.django_db

PROFILE = reverse("organization_profile")
LEGAL = reverse("organization_legal")
PUBLIC = reverse("organization_public")
ADD_PERSON = reverse("organization_person_add")

LEGAL_FORM = {
    "legal_name": "Riverside Family Medicine, PLLC",
    "business_type": "company",
    "tax_id": EIN,
    "address_line1": "200 Oak Avenue",
    "address_line2": "Suite 4",
    "city": "Chicago",
    "state": "IL",
    "postal_code": "60601-1234",
    "industry_code": "8011",
}
# What must never be seen in clear outside the encrypted columns: the EIN, the date of birth, the SSN digits.
SECRETS = ("4815162", "274815162", "1974-03-18", "1974", "0418")


def _person_form(**changes) -> dict:
    form = {**PERSON, **changes}
    return {key: ("on" if value is True else value) for key, value in form.items() if value is not False}


def _password_typed(client, *, minutes_ago):
    session = client.session
    session[AUTHENTICATED_AT] = int(time.time() - minutes_ago * 60)
    session.save()


def _no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_an_administrator_sees_the_profile(client_for, organization, administrator):
    response = client_for(administrator).get(PROFILE)

    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Organization profile</h1>" in body
    assert "Riverside Family Medicine PLLC" in body
    assert 'name="support_email"' in body and 'value="billing@riverside.example"' in body
    assert f'<a href="{reverse("transactions:stripe_connect")}">Stripe settings</a>' in body
    assert "Add the controller: Stripe needs one" in body


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_other_roles_get_403_everywhere(client_for, organization, location, administrator, role):
    from org_profile.profile import organization_person_add

    person = organization_person_add(organization=organization, actor=administrator, data=PERSON)
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user
    client = client_for(user)
    before = raw_row("org_profile_organization", organization.pk)

    for url in (PROFILE, LEGAL, ADD_PERSON, reverse("organization_person", args=[person.pk])):
        assert client.get(url).status_code == 403, url
    for url, data in (
        (LEGAL, LEGAL_FORM),
        (PUBLIC, {"public_name": "Taken over"}),
        (reverse("organization_logo"), {"remove": ""}),
        (ADD_PERSON, _person_form()),
        (reverse("organization_person", args=[person.pk]), _person_form(first_name="Taken")),
        (reverse("organization_person_remove", args=[person.pk]), {}),
    ):
        assert client.post(url, data).status_code == 403, url
    assert raw_row("org_profile_organization", organization.pk) == before
    assert OrganizationPerson.objects.get().first_name == "Priya"
    assert AuditEvent.objects.count() == 1  # the administrator's addition only


def test_signed_out_visitors_go_to_sign_in(client):
    response = client.get(PROFILE)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_legal_information_asks_for_the_password_again(client_for, organization, administrator):
    client = client_for(administrator)
    _password_typed(client, minutes_ago=60)

    page = client.get(LEGAL)
    post = client.post(LEGAL, LEGAL_FORM)

    assert page.status_code == 302 and page["Location"].startswith(reverse("password_confirm"))
    assert post.status_code == 302 and post["Location"].startswith(reverse("password_confirm"))
    assert Organization.objects.get(pk=organization.pk).tax_id_last4 == ""
    assert not AuditEvent.objects.exists()
    # The typed EIN is not kept in the session to show the form again.
    _no_secret_in(json.dumps(dict(client.session)))


def test_an_administrator_saves_the_legal_information_with_the_ein_encrypted(client_for, organization, administrator, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(administrator)

    response = client.post(LEGAL, LEGAL_FORM, follow=True)

    assert response.redirect_chain == [(PROFILE, 302)]
    row = Organization.objects.get(pk=organization.pk)
    assert (row.legal_name, row.business_type, row.address_line1, row.address_line2, row.city, row.state, row.postal_code, row.industry_code) == (
        "Riverside Family Medicine, PLLC", "company", "200 Oak Avenue", "Suite 4", "Chicago", "IL", "60601-1234", "8011"
    )  # fmt: skip
    assert row.tax_id_last4 == "5162"
    assert secret_decrypt(row.tax_id_encrypted) == EIN
    # PostgreSQL holds no digits of the EIN but its last 4.
    _no_secret_in(raw_row("org_profile_organization", organization.pk))
    body = response.content.decode()
    assert "On file, ending in 5162" in body
    _no_secret_in(body)
    # The form never gives the EIN back.
    form_page = client.get(LEGAL).content.decode()
    assert "EIN on file, ending in 5162" in form_page
    assert 'name="tax_id"' in form_page and 'name="tax_id" value' not in form_page
    _no_secret_in(form_page)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_type, event.actor_user) == (AuditAction.ORGANIZATION_LEGAL_CHANGED, ActorType.STAFF, administrator)
    assert event.changes == {
        "legal_name": [f"{organization.name} PLLC", "Riverside Family Medicine, PLLC"],
        "business_type": ["", "company"],
        "tax_id": [None, "••-•••5162"],
        "address_line1": ["120 Main Street", "200 Oak Avenue"],
        "address_line2": ["", "Suite 4"],
        "city": ["Springfield", "Chicago"],
        "postal_code": ["62701", "60601-1234"],
        "industry_code": ["", "8011"],
    }
    _no_secret_in(json.dumps(event.changes))
    _no_secret_in(caplog.text)


def test_leaving_the_ein_empty_keeps_it_and_typing_it_again_is_no_change(client_for, organization, administrator):
    client = client_for(administrator)
    client.post(LEGAL, LEGAL_FORM)
    token = Organization.objects.get(pk=organization.pk).tax_id_encrypted

    client.post(LEGAL, {**LEGAL_FORM, "tax_id": ""})
    client.post(LEGAL, {**LEGAL_FORM, "tax_id": "274815162"})
    assert Organization.objects.get(pk=organization.pk).tax_id_encrypted == token
    client.post(LEGAL, {**LEGAL_FORM, "tax_id": "98-7654321"})

    assert AuditEvent.objects.count() == 2
    assert AuditEvent.objects.order_by("-id").first().changes == {"tax_id": ["••-•••5162", "••-•••4321"]}
    assert secret_decrypt(Organization.objects.get(pk=organization.pk).tax_id_encrypted) == "98-7654321"


def test_a_bad_legal_form_is_explained_beside_each_field(client_for, organization, administrator):
    response = client_for(administrator).post(LEGAL, {**LEGAL_FORM, "tax_id": "12-34", "postal_code": "606"})

    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors == {
        "tax_id": ["Enter the EIN as 9 digits, such as 12-3456789."],
        "postal_code": ["Enter a ZIP code as 12345 or 12345-6789."],
    }
    body = response.content.decode()
    assert "Some details need fixing: nothing was saved." in body
    assert 'value="12-34"' not in body and 'name="tax_id" value' not in body  # not even a wrong EIN is put back on the page
    assert not AuditEvent.objects.exists()


def test_an_administrator_saves_what_patients_see(client_for, organization, administrator):
    response = client_for(administrator).post(
        PUBLIC,
        {"public_name": "Riverside Family Care", "support_phone": "+1 (312) 555-0188", "support_email": "help@riverside.example",
         "website": "riverside.example", "statement_descriptor": "Riverside Care"},
        follow=True,
    )  # fmt: skip

    assert response.redirect_chain == [(PROFILE, 302)]
    assert [str(m) for m in response.context["messages"]] == ["Saved what patients see."]
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.ORGANIZATION_PUBLIC_CHANGED
    assert event.changes == {
        "public_name": ["", "Riverside Family Care"],
        "support_phone": ["+12175550100", "+1 (312) 555-0188"],
        "support_email": ["billing@riverside.example", "help@riverside.example"],
        "website": ["", "https://riverside.example"],
        "statement_descriptor": ["", "RIVERSIDE CARE"],
    }


def test_a_bad_public_value_is_shown_on_the_profile(client_for, organization, administrator):
    response = client_for(administrator).post(PUBLIC, {"statement_descriptor": "RIVERSIDE*CARE", "public_name": "X Care"})

    assert response.status_code == 400
    assert response.context["public_form"].errors == {
        "statement_descriptor": ["Leave out *: card statements cannot show < > \\ ' \" or *."]
    }
    assert Organization.objects.get(pk=organization.pk).public_name == ""


def test_an_owner_is_added_with_the_secrets_encrypted_and_never_shown_again(client_for, organization, administrator, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(administrator)

    response = client.post(ADD_PERSON, _person_form(), follow=True)

    assert response.redirect_chain == [(PROFILE, 302)]
    person = OrganizationPerson.objects.get()
    assert (person.full_name, person.is_owner, person.is_controller, str(person.ownership_percent)) == (
        "Priya Natarajan", True, True, "60.00"
    )
    assert secret_decrypt(person.dob_encrypted) == "1974-03-18" and secret_decrypt(person.ssn_last4_encrypted) == "0418"
    _no_secret_in(raw_row("org_profile_organizationperson", person.pk))
    profile = response.content.decode()
    assert "Date of birth on file · SSN last 4 on file" in profile
    assert "Owner, 60%" in profile and "The owners listed hold 60% of the business." in profile
    _no_secret_in(profile)
    edit = client.get(reverse("organization_person", args=[person.pk])).content.decode()
    assert "Date of birth: on file." in edit and "Last 4 digits of the SSN: on file." in edit
    _no_secret_in(edit)
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.ORGANIZATION_PERSON_ADDED
    assert event.changes["date_of_birth"] == [None, "on file"]
    assert event.changes["ssn_last4"] == [None, "on file"]
    assert event.changes["first_name"] == [None, "Priya"]
    _no_secret_in(json.dumps(event.changes))
    _no_secret_in(caplog.text)


def test_changing_a_person_keeps_the_secrets_unless_replaced(client_for, organization, administrator):
    client = client_for(administrator)
    client.post(ADD_PERSON, _person_form())
    person = OrganizationPerson.objects.get()
    url = reverse("organization_person", args=[person.pk])

    client.post(url, _person_form(date_of_birth="", ssn_last4="", title="CEO"))
    kept = OrganizationPerson.objects.get()
    client.post(url, _person_form(date_of_birth="1975-05-20", ssn_last4="", title="CEO"))
    replaced = OrganizationPerson.objects.get()

    assert (kept.title, kept.dob_encrypted, kept.ssn_last4_encrypted) == ("CEO", person.dob_encrypted, person.ssn_last4_encrypted)
    assert secret_decrypt(replaced.dob_encrypted) == "1975-05-20" and replaced.ssn_last4_encrypted == person.ssn_last4_encrypted
    changed = list(AuditEvent.objects.filter(action=AuditAction.ORGANIZATION_PERSON_CHANGED).order_by("id").values_list("changes", flat=True))
    assert changed == [
        {"person": person.pk, "name": "Priya Natarajan", "title": ["Medical Director", "CEO"]},
        {"person": person.pk, "name": "Priya Natarajan", "date_of_birth": ["on file", "replaced"]},
    ]
    _no_secret_in(json.dumps(changed))
    assert "1975" not in json.dumps(changed)


def test_a_person_is_removed_and_audited(client_for, organization, administrator):
    client = client_for(administrator)
    client.post(ADD_PERSON, _person_form())
    client.post(ADD_PERSON, _person_form(first_name="Daniel", is_owner=False, ownership_percent=""))
    priya = OrganizationPerson.objects.get(first_name="Priya")

    response = client.post(reverse("organization_person_remove", args=[priya.pk]), follow=True)

    assert [str(m) for m in response.context["messages"]][-1] == "Removed the person from the profile."
    assert list(OrganizationPerson.objects.values_list("first_name", flat=True)) == ["Daniel"]
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_PERSON_REMOVED)
    assert event.changes == {"person": priya.pk, "name": ["Priya Natarajan", None], "is_owner": [True, None], "is_controller": [True, None]}


def test_the_people_pages_ask_for_the_password_again(client_for, organization, administrator):
    client = client_for(administrator)
    _password_typed(client, minutes_ago=60)

    assert client.get(ADD_PERSON)["Location"].startswith(reverse("password_confirm"))
    assert client.post(ADD_PERSON, _person_form())["Location"].startswith(reverse("password_confirm"))
    assert not OrganizationPerson.objects.exists()
    _no_secret_in(json.dumps(dict(client.session)))


def test_an_administrator_elsewhere_cannot_reach_this_organizations_people(client_for, organization, other_organization, administrator):
    client_for(administrator).post(ADD_PERSON, _person_form())
    person = OrganizationPerson.objects.get()
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    client = client_for(outsider)

    assert client.get(reverse("organization_person", args=[person.pk])).status_code == 404
    assert client.post(reverse("organization_person", args=[person.pk]), _person_form(first_name="X")).status_code == 404
    assert client.post(reverse("organization_person_remove", args=[person.pk])).status_code == 404
    assert "Priya" not in client.get(PROFILE).content.decode()
    assert OrganizationPerson.objects.get().first_name == "Priya"


def test_error_reports_leave_the_ein_out_of_the_request(client_for, organization, administrator, monkeypatch):
    from django.core.signals import got_request_exception
    from django.views.debug import ExceptionReporter

    from org_profile import profile_views

    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(profile_views, "organization_legal_update", broken)
    client = client_for(administrator)
    client.raise_request_exception = False
    requests = []

    def keep(sender, request, **kwargs):
        requests.append(request)

    got_request_exception.connect(keep)
    try:
        assert client.post(LEGAL, LEGAL_FORM).status_code == 500
    finally:
        got_request_exception.disconnect(keep)

    error = RuntimeError("the database went away")
    report = ExceptionReporter(requests[0], RuntimeError, error, None).get_traceback_text()
    assert "tax_id" in report and "Riverside Family Medicine, PLLC" in report
    _no_secret_in(report)
