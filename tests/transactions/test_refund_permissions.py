"""Who may refund is the organization's setting (administrators always; managers by default; staff
when allowed), enforced the same way in the service, the refund page and the transaction page;
and a refund from the workspace goes through a confirmation step."""

import pytest
from django.urls import reverse

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from org_profile.enums import Role
from org_profile.services import organization_update
from transactions.enums import RefundStatus, TransactionStatus
from transactions.models import Refund
from transactions.services.refunds import refund_create

from ..factories import LocationFactory, MembershipFactory
from .payments import money_state, paid_transaction

pytestmark = pytest.mark.django_db

DEFAULT = None  # the organization's setting as created: administrators and managers
WITH_STAFF = [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF]
ADMINISTRATORS_ONLY = [Role.ADMINISTRATOR]

REFUSALS = {
    DEFAULT: "In this organization, only administrators and managers can refund payments.",
    tuple(ADMINISTRATORS_ONLY): "In this organization, only administrators can refund payments.",
}

# (setting, role, may refund)
MATRIX = [
    (DEFAULT, Role.ADMINISTRATOR, True),
    (DEFAULT, Role.MANAGER, True),
    (DEFAULT, Role.STAFF, False),
    (WITH_STAFF, Role.ADMINISTRATOR, True),
    (WITH_STAFF, Role.MANAGER, True),
    (WITH_STAFF, Role.STAFF, True),
    (ADMINISTRATORS_ONLY, Role.ADMINISTRATOR, True),
    (ADMINISTRATORS_ONLY, Role.MANAGER, False),
    (ADMINISTRATORS_ONLY, Role.STAFF, False),
]


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)


def _set_refund_roles(organization, administrator, roles):
    if roles is not DEFAULT:
        return organization_update(organization=organization, actor=administrator, data={"refund_roles": roles})
    return organization


def _member(organization, location, role):
    return MembershipFactory(organization=organization, role=role, locations=[location]).user


def _detail_url(transaction):
    return reverse("transactions:transaction_detail", args=[transaction.pk])


def _refund_url(transaction):
    return reverse("transactions:transaction_refund", args=[transaction.pk])


def test_the_default_setting_is_administrators_and_managers(organization):
    assert organization.refund_roles == [Role.ADMINISTRATOR, Role.MANAGER]


@pytest.mark.parametrize("roles, role, allowed", MATRIX)
def test_the_service_follows_the_setting(organization, location, administrator, payment, roles, role, allowed):
    organization = _set_refund_roles(organization, administrator, roles)
    actor = _member(organization, location, role)
    before = money_state(payment)

    if allowed:
        refund = refund_create(organization=organization, actor=actor, transaction=payment, amount_cents=1500, reason="Overpaid")
        payment.refresh_from_db()
        assert (refund.status, refund.amount_cents, refund.requested_by) == (RefundStatus.SUCCEEDED, 1500, actor)
        assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 1500)
        assert AuditEvent.objects.get(action="refund.requested").actor_user == actor
    else:
        with pytest.raises(ApplicationError) as error:
            refund_create(organization=organization, actor=actor, transaction=payment, amount_cents=1500, reason="Overpaid")
        assert error.value.message == REFUSALS[roles if roles is DEFAULT else tuple(roles)]
        assert money_state(payment) == before


@pytest.mark.parametrize("roles, role, allowed", MATRIX)
def test_the_pages_follow_the_setting(client_for, organization, location, administrator, payment, roles, role, allowed):
    _set_refund_roles(organization, administrator, roles)
    actor = _member(organization, location, role)
    client = client_for(actor)

    page = client.get(_detail_url(payment))
    before = money_state(payment)
    first = client.post(_refund_url(payment), {"amount": "15", "reason": "Overpaid"})

    body = page.content.decode()
    assert page.status_code == 200
    assert (page.context["form"] is not None) == allowed
    assert (_refund_url(payment) in body) == allowed
    if allowed:
        assert first.status_code == 200
        assert money_state(payment) == before
        confirmed = client.post(_refund_url(payment), first.context["fields"])
        assert confirmed.status_code == 302
        assert Refund.objects.get().requested_by == actor
    else:
        assert first.status_code == 403
        confirmed = client.post(
            _refund_url(payment), {"amount": "15", "reason": "Overpaid", "confirmed": "1"}
        )
        assert confirmed.status_code == 403
        assert money_state(payment) == before


def test_a_manager_refused_by_the_setting_cannot_retry_either(client_for, organization, administrator, manager, payment, monkeypatch):
    from transactions.gateways.base import GatewayUnavailable
    from transactions.gateways.sandbox import SandboxGateway

    def unavailable(self, *, refund):
        raise GatewayUnavailable("The Sandbox did not answer in time.")

    monkeypatch.setattr(SandboxGateway, "refund", unavailable)
    refund = refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=700, reason="Overpaid")
    organization_update(organization=organization, actor=administrator, data={"refund_roles": ADMINISTRATORS_ONLY})
    before = money_state(payment)

    response = client_for(manager).post(_refund_url(payment), {"retry_refund": refund.pk})

    assert response.status_code == 403
    assert money_state(payment) == before
    page = client_for(manager).get(_detail_url(payment)).content.decode()
    assert 'name="retry_refund"' not in page


def test_staff_allowed_to_refund_still_see_only_their_locations(client_for, organization, administrator, patient):
    organization = _set_refund_roles(organization, administrator, WITH_STAFF)
    elsewhere = paid_transaction(organization=organization, patient=patient, location=LocationFactory(organization=organization))
    staff = _member(organization, LocationFactory(organization=organization), Role.STAFF)
    before = money_state(elsewhere)

    response = client_for(staff).post(_refund_url(elsewhere), {"amount": "50.00", "reason": "Overpaid", "confirmed": "1"})

    assert response.status_code == 404
    assert money_state(elsewhere) == before


def test_a_sub_account_user_cannot_refund_a_payment_of_another_location_through_the_service(
    organization, administrator, patient, location, other_location
):
    # given staff may refund, a sub-account user of the Downtown Clinic, and a Northside payment
    organization = _set_refund_roles(organization, administrator, WITH_STAFF)
    elsewhere = paid_transaction(organization=organization, patient=patient, location=other_location, amount_cents=5000)
    staff = _member(organization, location, Role.STAFF)
    before = money_state(elsewhere)

    # when they refund it by calling the service (the page already answers 404)
    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=staff, transaction=elsewhere, amount_cents=100, reason="Overpaid")

    # then it is refused and nothing changed
    assert error.value.message == "You can refund payments only at your own locations."
    assert money_state(elsewhere) == before
    assert Refund.objects.count() == 0


def test_a_membership_in_another_organization_does_not_count(organization, other_organization, administrator, payment):
    organization = _set_refund_roles(organization, administrator, WITH_STAFF)
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=outsider, transaction=payment, amount_cents=100, reason="Overpaid")

    assert error.value.message == "In this organization, only administrators, managers and sub-account users can refund payments."
    assert money_state(payment) == before


# -- the confirmation step -------------------------------------------------------------------------


def test_the_first_post_changes_nothing_and_shows_the_remainder(client_for, manager, payment, patient):
    before = money_state(payment)

    response = client_for(manager).post(
        _refund_url(payment), {"amount": "12.50", "reason": "Lab fee waived"}
    )

    assert response.status_code == 200
    assert money_state(payment) == before
    assert (response.context["amount_cents"], response.context["refundable_cents"], response.context["remainder_cents"]) == (
        1250, 5000, 3750
    )
    body = response.content.decode()
    for text in (
        "<dt>Refund</dt><dd><strong>$12.50</strong></dd>",
        f"<dt>To</dt><dd>{patient.full_name}, Visa ···· 4242</dd>",
        "<dt>Refundable now</dt><dd>$50.00</dd>",
        "<dt>Refundable after this refund</dt><dd>$37.50</dd>",
        "<dt>Reason</dt><dd>Lab fee waived</dd>",
        '<button type="submit" class="danger">Confirm refund</button>',
        '<button type="submit" name="back" value="1" class="secondary">Back</button>',
        'name="csrfmiddlewaretoken"',
        '<input type="hidden" name="confirmed" value="1">',
        '<input type="hidden" name="amount" value="12.50">',
    ):
        assert text in body, text
    fields = response.context["fields"]
    assert {key: fields[key] for key in ("amount", "reason", "confirmed")} == {
        "amount": "12.50", "reason": "Lab fee waived", "confirmed": "1"
    }


def test_the_confirm_post_refunds(client_for, manager, payment):
    client = client_for(manager)
    confirmation = client.post(_refund_url(payment), {"amount": "50.00", "reason": "Visit cancelled"})

    response = client.post(_refund_url(payment), confirmation.context["fields"], follow=True)

    assert response.redirect_chain == [(_detail_url(payment), 302)]
    assert [str(m) for m in response.context["messages"]] == ["Refunded $50.00 to the patient's card."]
    refund = Refund.objects.get()
    assert (refund.amount_cents, refund.reason, refund.status, str(refund.idempotency_key)) == (
        5000, "Visit cancelled", RefundStatus.SUCCEEDED, confirmation.context["fields"]["idempotency_key"]
    )
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.REFUNDED, 5000)


def test_back_returns_to_the_form_with_what_was_typed(client_for, manager, payment):
    client = client_for(manager)
    confirmation = client.post(_refund_url(payment), {"amount": "12.50", "reason": "Lab fee waived"})
    before = money_state(payment)

    response = client.post(_refund_url(payment), {**confirmation.context["fields"], "back": "1"})

    assert response.status_code == 200
    assert money_state(payment) == before
    body = response.content.decode()
    assert 'name="amount" value="12.50"' in body
    assert "Lab fee waived</textarea>" in body


def test_a_double_click_on_confirm_refunds_once(client_for, manager, payment):
    client = client_for(manager)
    fields = client.post(_refund_url(payment), {"amount": "10", "reason": "Overpaid"}).context["fields"]

    first = client.post(_refund_url(payment), fields, follow=True)
    second = client.post(_refund_url(payment), fields, follow=True)

    assert [str(m) for m in first.context["messages"]] == ["Refunded $10.00 to the patient's card."]
    assert [str(m) for m in second.context["messages"]] == ["Refunded $10.00 to the patient's card."]
    assert Refund.objects.count() == 1
    payment.refresh_from_db()
    assert payment.refunded_cents == 1000


def test_a_confirmation_overtaken_by_another_refund_is_refused(client_for, organization, manager, administrator, payment):
    client = client_for(manager)
    fields = client.post(_refund_url(payment), {"amount": "50.00", "reason": "Overpaid"}).context["fields"]
    assert fields["amount"] == "50.00"  # the exact amount shown, not "in full"
    refund_create(organization=organization, actor=administrator, transaction=payment, amount_cents=2000, reason="Lab fee")
    before = money_state(payment)

    response = client.post(_refund_url(payment), fields)

    assert response.status_code == 400
    assert response.context["form"].errors["amount"] == ["The amount cannot be more than $30.00."]
    assert money_state(payment) == before


def test_a_reused_confirmation_key_for_another_amount_is_refused(organization, manager, payment):
    import uuid

    key = uuid.uuid4()
    refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1000, reason="Overpaid", idempotency_key=key)
    before = money_state(payment)

    with pytest.raises(ApplicationError) as error:
        refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=2000, reason="Overpaid", idempotency_key=key)

    assert error.value.message == "This refund form was already used. Start the refund again."
    assert money_state(payment) == before
