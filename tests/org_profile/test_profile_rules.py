"""The organization profile's rules, each with the message an administrator reads: the EIN, US
states and ZIP codes, phone numbers, Stripe's statement-descriptor rules, and the owners'
shares and controller. A refused change saves nothing and writes no audit event."""

import datetime
from decimal import Decimal

import pytest

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from org_profile.enums import Role
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile import (
    ProfileInvalid,
    ein_normalize,
    organization_legal_update,
    organization_person_add,
    organization_person_change,
    organization_person_remove,
    organization_public_update,
    phone_problem,
    statement_descriptor_problem,
)

from ..factories import MembershipFactory
from .profile_support import PERSON

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "typed, stored",
    [("12-3456789", "12-3456789"), ("123456789", "12-3456789"), (" 12 3456789 ", "12-3456789"), ("12-345678", None),
     ("1234567890", None), ("AB-3456789", None), ("00-3456789", None), ("12-0000000", None), ("12/3456789", None)],
)  # fmt: skip
def test_an_ein_is_nine_digits(typed, stored):
    assert ein_normalize(typed) == stored


@pytest.mark.parametrize(
    "value, problem",
    [
        ("+1 (312) 555-0188", None),
        ("312-555-0188", None),
        ("1 312 555 0188", None),
        ("+44 20 7946 0958", None),
        ("555-0188", "Enter a 10-digit US phone number, such as (217) 555-0100, or an international one starting with +."),
        ("+1 312 555 018", "A US phone number has 10 digits after +1, such as +1 217 555 0100."),
        ("call the front desk", "Enter a phone number with digits only, such as +1 217 555 0100."),
        ("+4412", "An international phone number has 8 to 15 digits after the +."),
    ],
)
def test_phone_numbers(value, problem):
    assert phone_problem(value) == problem


@pytest.mark.parametrize(
    "value, problem",
    [
        ("RIVERSIDE CARE", None),
        ("DR. SMITH & ASSOC.", None),
        ("RIVERSIDE FAMILY MEDICINE", "Use at most 22 characters (this has 25)."),
        ("RIVERSIDE*CLINIC", "Leave out *: card statements cannot show < > \\ ' \" or *."),
        ("O'BRIEN <CLINIC>", "Leave out ' < >: card statements cannot show < > \\ ' \" or *."),
        ('SAY "HI" CLINIC', "Leave out \": card statements cannot show < > \\ ' \" or *."),
        ("CLÍNICA RIVERSIDE", "Use Latin letters without accents (A–Z), digits, spaces and simple punctuation."),
        ("RFM", "Use at least 5 characters."),
        ("2175550100", "Include at least one letter."),
        ("", None),
    ],
)
def test_statement_descriptor_follows_stripes_rules(value, problem):
    assert statement_descriptor_problem(value) == problem


def _legal(organization) -> tuple:
    row = Organization.objects.get(pk=organization.pk)
    return (row.legal_name, row.business_type, row.tax_id_encrypted, row.tax_id_last4, row.state, row.postal_code, row.industry_code)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("tax_id", "12-345678", "Enter the EIN as 9 digits, such as 12-3456789."),
        ("state", "Illinois", "Choose a US state (two letters, such as IL)."),
        ("state", "ZZ", "Choose a US state (two letters, such as IL)."),
        ("postal_code", "6270", "Enter a ZIP code as 12345 or 12345-6789."),
        ("postal_code", "62701-12", "Enter a ZIP code as 12345 or 12345-6789."),
        ("business_type", "partnership", "Choose the kind of business."),
        ("industry_code", "5812", "Choose a healthcare industry code from the list."),
        ("legal_name", "", "Enter the business's legal name, as the IRS knows it."),
        ("legal_name", "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_bad_legal_values_are_explained_and_nothing_is_saved(organization, administrator, field, value, message):
    before = _legal(organization)

    with pytest.raises(ProfileInvalid) as error:
        organization_legal_update(organization=organization, actor=administrator, data={field: value})

    assert error.value.errors == {field: [message]}
    assert _legal(organization) == before
    assert not AuditEvent.objects.exists()


def test_every_legal_problem_is_reported_at_once(organization, administrator):
    with pytest.raises(ProfileInvalid) as error:
        organization_legal_update(
            organization=organization, actor=administrator, data={"tax_id": "1", "state": "XX", "postal_code": "1"}
        )

    assert set(error.value.errors) == {"tax_id", "state", "postal_code"}


def test_zip_plus_four_and_a_lowercase_state_are_accepted(organization, administrator):
    updated = organization_legal_update(
        organization=organization, actor=administrator, data={"state": "il", "postal_code": "60601-1234"}
    )

    assert (updated.state, updated.postal_code) == ("IL", "60601-1234")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("support_phone", "front desk", "Enter a phone number with digits only, such as +1 217 555 0100."),
        ("support_email", "billing at riverside", "Enter a valid email address."),
        ("website", "https://not a site", "Enter the website's address, such as riverside.example."),
        ("statement_descriptor", "RFM", "Use at least 5 characters."),
    ],
)
def test_bad_public_values_are_explained(organization, administrator, field, value, message):
    with pytest.raises(ProfileInvalid) as error:
        organization_public_update(organization=organization, actor=administrator, data={field: value})

    assert error.value.errors == {field: [message]}
    assert not AuditEvent.objects.exists()


def test_public_values_are_tidied(organization, administrator):
    updated = organization_public_update(
        organization=organization,
        actor=administrator,
        data={"website": "riverside.example", "statement_descriptor": "  riverside   care ", "public_name": " Riverside  Care "},
    )

    assert (updated.website, updated.statement_descriptor, updated.public_name) == (
        "https://riverside.example", "RIVERSIDE CARE", "Riverside Care"
    )


# -- the people ----------------------------------------------------------------------------------


def _add(organization, administrator, **changes):
    return organization_person_add(organization=organization, actor=administrator, data={**PERSON, **changes})


@pytest.mark.parametrize(
    "changes, errors",
    [
        ({"ownership_percent": "24.99"}, {"ownership_percent": ["An owner Stripe asks about holds 25% to 100%: enter a share in that range."]}),
        ({"ownership_percent": "100.5"}, {"ownership_percent": ["An owner Stripe asks about holds 25% to 100%: enter a share in that range."]}),
        ({"ownership_percent": ""}, {"ownership_percent": ["Enter the share this owner holds (25 to 100)."]}),
        ({"ownership_percent": "half"}, {"ownership_percent": ["Enter the share owned as a number, such as 50."]}),
        ({"ownership_percent": "33.333"}, {"ownership_percent": ["Use at most two decimal places, such as 33.33."]}),
        ({"is_owner": False, "is_controller": False}, {"is_owner": ["Stripe asks only about owners of 25% or more and the controller: tick at least one."]}),
        ({"date_of_birth": "18/03/1974"}, {"date_of_birth": ["Enter the date of birth as YYYY-MM-DD, such as 1975-04-30."]}),
        ({"date_of_birth": (datetime.date.today() - datetime.timedelta(days=17 * 365)).isoformat()},
         {"date_of_birth": ["Stripe accepts owners and controllers who are 18 or older: check the date of birth."]}),
        ({"date_of_birth": ""}, {"date_of_birth": ["Enter the date of birth."]}),
        ({"ssn_last4": "041"}, {"ssn_last4": ["Enter exactly the last 4 digits of the Social Security number."]}),
        ({"ssn_last4": "12345"}, {"ssn_last4": ["Enter exactly the last 4 digits of the Social Security number."]}),
        ({"ssn_last4": ""}, {"ssn_last4": ["Enter the last 4 digits of the Social Security number."]}),
        ({"title": ""}, {"title": ["Enter the controller's title, such as Practice Administrator or CEO."]}),
        ({"email": "priya at clinic"}, {"email": ["Enter an e-mail address, such as name@clinic.example."]}),
        ({"phone": "555-0131"}, {"phone": ["Enter a 10-digit US phone number, such as (217) 555-0100, or an international one starting with +."]}),
        ({"state": "QC", "postal_code": "H2X"}, {"state": ["Choose a US state (two letters, such as IL)."], "postal_code": ["Enter a ZIP code as 12345 or 12345-6789."]}),
        ({"first_name": "", "address_line1": ""}, {"first_name": ["Enter the first name."], "address_line1": ["Enter the street address."]}),
    ],
)  # fmt: skip
def test_bad_person_values_are_explained_and_nobody_is_added(organization, administrator, changes, errors):
    with pytest.raises(ProfileInvalid) as error:
        _add(organization, administrator, **changes)

    assert error.value.errors == errors
    assert not OrganizationPerson.objects.exists()
    assert not AuditEvent.objects.exists()


def test_owners_shares_add_up_to_at_most_100(organization, administrator):
    _add(organization, administrator, ownership_percent="60")
    _add(organization, administrator, first_name="Daniel", is_controller=False, ownership_percent="40")

    with pytest.raises(ProfileInvalid) as error:
        _add(organization, administrator, first_name="Third", is_controller=False, ownership_percent="25")

    assert error.value.errors == {"ownership_percent": ["The owners' shares would add up to 125%: together they cannot exceed 100%."]}
    assert OrganizationPerson.objects.count() == 2


def test_raising_a_share_counts_the_others(organization, administrator):
    first = _add(organization, administrator, ownership_percent="60")
    _add(organization, administrator, first_name="Daniel", is_controller=False, ownership_percent="40")

    with pytest.raises(ProfileInvalid):
        organization_person_change(organization=organization, actor=administrator, person_id=first.pk, data={**PERSON, "ownership_percent": "61"})
    organization_person_change(organization=organization, actor=administrator, person_id=first.pk, data={**PERSON, "ownership_percent": "55.5"})

    assert OrganizationPerson.objects.get(pk=first.pk).ownership_percent == Decimal("55.50")


def test_the_last_controller_stays(organization, administrator):
    controller = _add(organization, administrator, is_owner=False, ownership_percent="")

    with pytest.raises(ProfileInvalid) as error:
        organization_person_remove(organization=organization, actor=administrator, person_id=controller.pk)
    assert error.value.errors == {"is_controller": ["Stripe needs a controller: name another controller first."]}
    with pytest.raises(ProfileInvalid):
        organization_person_change(
            organization=organization, actor=administrator, person_id=controller.pk,
            data={**PERSON, "is_controller": False, "is_owner": True, "ownership_percent": "30"},
        )  # fmt: skip

    other = _add(organization, administrator, first_name="Daniel", is_owner=False, ownership_percent="")
    organization_person_remove(organization=organization, actor=administrator, person_id=controller.pk)
    assert list(OrganizationPerson.objects.values_list("pk", flat=True)) == [other.pk]


def test_a_person_of_another_organization_is_not_found(organization, other_organization, administrator):
    outsider_admin = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    theirs = organization_person_add(organization=other_organization, actor=outsider_admin, data=PERSON)

    with pytest.raises(ApplicationError) as error:
        organization_person_change(organization=organization, actor=administrator, person_id=theirs.pk, data=PERSON)
    assert error.value.message == "No such person in this organization's profile."
    with pytest.raises(ApplicationError):
        organization_person_remove(organization=organization, actor=administrator, person_id=theirs.pk)
    assert OrganizationPerson.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_only_administrators_change_the_profile(organization, location, role):
    user = MembershipFactory(organization=organization, role=role, locations=[location]).user
    message = "Only administrators can change the organization's profile."

    for call in (
        lambda: organization_legal_update(organization=organization, actor=user, data={"legal_name": "Taken"}),
        lambda: organization_public_update(organization=organization, actor=user, data={"public_name": "Taken"}),
        lambda: organization_person_add(organization=organization, actor=user, data=PERSON),
    ):
        with pytest.raises(ApplicationError) as error:
            call()
        assert error.value.message == message
    assert not AuditEvent.objects.exists()
    assert not OrganizationPerson.objects.exists()
