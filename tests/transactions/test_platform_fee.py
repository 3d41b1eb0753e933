"""The platform's fee: an organization's percent and/or fixed amount (set by operators in the admin),
applied to every charge as Stripe's ``application_fee_amount`` (Checkout, cards on file, captures of
holds on the captured amount), by one rounding rule (org_profile.fees), never above the charge; kept
on the transaction as Stripe reports it, shown on its page and in the Excel export. The Sandbox
applies the same fee, so `make dev` shows it.

localstripe has no Connect, so the recording client takes ``application_fee_amount`` off before
localstripe sees it and puts it back on the PaymentIntent and its captured charge, as Stripe does
(tests/stripe_support.py)."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction as db_transaction
from django.urls import reverse

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from org_profile.fees import platform_fee_cents
from org_profile.models import Organization
from org_profile.services import OrganizationSettingsInvalid, organization_platform_fee_set
from transactions.enums import PaymentRequestKind
from transactions.models import SandboxCharge, SavedCard, Transaction
from transactions.services.saved_cards import (
    authorization_capture,
    card_on_file_consent_text,
    saved_card_charge,
    saved_card_setup_begin,
    saved_card_setup_complete,
)

from ..factories import OrganizationFactory, UserFactory
from ..stripe_support import event_receive, payment_intent_event, stripe_checkout_open, stripe_checkout_paid
from .pay_support import SUCCEEDS, card_fields, checkout_path, pay_url, payment_request_make, verified

pytestmark = pytest.mark.django_db


def _terms(organization, percent: str, fixed_cents: int):
    Organization.objects.filter(pk=organization.pk).update(
        platform_fee_percent=Decimal(percent), platform_fee_fixed_cents=fixed_cents
    )
    organization.refresh_from_db()
    return organization


@pytest.mark.parametrize(
    "percent, fixed_cents, amount_cents, fee",
    [
        ("0", 0, 4500, 0),  # no fee
        ("2.5", 0, 1010, 25),  # 25.25¢ rounds down
        ("2.5", 0, 1030, 26),  # 25.75¢ rounds up
        ("2.5", 0, 1020, 26),  # 25.5¢: halves round up
        ("0", 30, 4500, 30),  # fixed only
        ("2.9", 30, 10000, 320),  # both: 290¢ + 30¢
        ("1.25", 0, 1, 0),  # a cent's 1.25% is nothing
        ("100", 30, 4500, 4500),  # never more than the charge
        ("0", 500, 300, 300),  # a fixed fee larger than a small charge takes the charge, no more
    ],
)
def test_the_fee_is_the_percent_rounded_half_up_plus_the_fixed_never_above_the_charge(percent, fixed_cents, amount_cents, fee):
    organization = Organization(platform_fee_percent=Decimal(percent), platform_fee_fixed_cents=fixed_cents)

    assert platform_fee_cents(organization, amount_cents) == fee


def test_a_checkout_asks_stripe_for_the_fee_and_the_transaction_keeps_what_stripe_reports(
    stripe_world, stripe_organization, client_for, manager
):
    _terms(stripe_organization, "2.9", 30)

    paid = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)

    (create,) = [request for request in stripe_world.http.sent("POST") if request.path == "/v1/checkout/sessions"]
    assert create.params["payment_intent_data"]["application_fee_amount"] == "320"
    assert paid.platform_fee_cents == 320
    page = client_for(manager).get(reverse("transactions:transaction_detail", args=[paid.pk])).content.decode()
    assert "<dt>Platform fee</dt><dd>−$3.20</dd>" in page


def test_the_fee_recorded_from_an_event_is_stripes_not_worked_out_again(
    stripe_world, stripe_organization, django_capture_on_commit_callbacks
):
    # given a checkout started under a 2% fee, whose terms the operator changed before it was paid
    _terms(stripe_organization, "2", 0)
    transaction = stripe_checkout_open(stripe_organization, amount_cents=5000)
    _terms(stripe_organization, "5", 100)
    stripe_world.checkout.pay(transaction.gateway_checkout_id)

    # when Stripe's event reports the payment
    with django_capture_on_commit_callbacks(execute=True):
        event_receive(payment_intent_event(stripe_world, transaction))

    # then the transaction keeps the fee Stripe took (2% of $50.00), not today's terms
    transaction.refresh_from_db()
    assert (transaction.charged_cents, transaction.platform_fee_cents) == (5000, 100)


def test_without_a_fee_stripe_is_asked_for_none(stripe_world, stripe_organization):
    paid = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000)

    (create,) = [request for request in stripe_world.http.sent("POST") if request.path == "/v1/checkout/sessions"]
    assert "application_fee_amount" not in create.params["payment_intent_data"]
    assert paid.platform_fee_cents == 0


@pytest.fixture
def card(stripe_world, stripe_organization, patient):
    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=stripe_organization, patient=patient),
        consent_given=True,
        consent_text=card_on_file_consent_text(stripe_organization),
        ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/",
        cancel_url="http://testserver/pay/t/details/",
    )
    stripe_world.checkout.save_card(start.checkout_id)
    return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))


def test_a_card_on_file_charge_pays_the_fee(stripe_world, stripe_organization, manager, location, card):
    _terms(stripe_organization, "3", 0)

    charged = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=4550,
        kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=location,
    )

    (create,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert create.params["application_fee_amount"] == "137"  # 136.5¢, half up
    assert (charged.charged_cents, charged.platform_fee_cents) == (4550, 137)


def test_a_hold_pays_the_fee_when_captured_on_the_captured_amount(stripe_world, stripe_organization, manager, location, card):
    _terms(stripe_organization, "0", 75)
    held = saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location, hold_only=True,
    )
    (hold,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert "application_fee_amount" not in hold.params  # nothing is taken while it is only held
    assert held.platform_fee_cents == 0

    captured = authorization_capture(organization=stripe_organization, actor=manager, transaction=held)

    (capture,) = stripe_world.http.sent("POST", f"/v1/payment_intents/{held.gateway_checkout_id}/capture")
    assert capture.params == {"application_fee_amount": "75"}
    assert (captured.charged_cents, captured.platform_fee_cents) == (3000, 75)


def test_the_sandbox_takes_the_same_fee(client, organization, client_for, manager, django_capture_on_commit_callbacks):
    _terms(organization, "2.5", 25)
    payment_request = payment_request_make(organization=organization, amount_cents=4500)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(sandbox_path, card_fields(SUCCEEDS))
        client.get(pay_url("done", payment_request))

    transaction = Transaction.objects.get(payment_request=payment_request)
    assert SandboxCharge.objects.get(session_id=transaction.gateway_checkout_id).session.application_fee_cents == 138
    assert (transaction.charged_cents, transaction.platform_fee_cents) == (4500, 138)  # 112.5¢ → 113¢, + 25¢
    page = client_for(manager).get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()
    assert "<dt>Platform fee</dt><dd>−$1.38</dd>" in page


def test_operators_set_the_fee_and_it_is_audited(organization):
    operator = UserFactory(is_staff=True)

    stored = organization_platform_fee_set(organization=organization, actor=operator, percent="2.75", fixed_cents=30)

    assert (stored.platform_fee_percent, stored.platform_fee_fixed_cents) == (Decimal("2.75"), 30)
    audit = AuditEvent.objects.get(organization=organization, action="organization.updated")
    assert audit.actor_user == operator
    assert audit.changes == {"platform_fee_percent": ["0.00", "2.75"], "platform_fee_fixed_cents": ["0", "30"]}


@pytest.mark.parametrize(
    "percent, fixed_cents, field",
    [("100.01", 0, "platform_fee_percent"), ("-1", 0, "platform_fee_percent"), ("2", -5, "platform_fee_fixed_cents")],
)
def test_a_fee_out_of_range_is_refused_and_nothing_changes(organization, percent, fixed_cents, field):
    with pytest.raises(OrganizationSettingsInvalid) as refused:
        organization_platform_fee_set(
            organization=organization, actor=UserFactory(is_staff=True), percent=percent, fixed_cents=fixed_cents
        )

    assert list(refused.value.errors) == [field]
    organization.refresh_from_db()
    assert (organization.platform_fee_percent, organization.platform_fee_fixed_cents) == (0, 0)
    assert not AuditEvent.objects.filter(action="organization.updated").exists()


def test_only_operators_set_the_fee(organization, administrator):
    with pytest.raises(ApplicationError, match="Only platform operators"):
        organization_platform_fee_set(organization=organization, actor=administrator, percent="5", fixed_cents=0)

    organization.refresh_from_db()
    assert organization.platform_fee_percent == 0


def test_the_database_refuses_a_fee_out_of_range():
    with pytest.raises(IntegrityError), db_transaction.atomic():
        OrganizationFactory(platform_fee_percent=Decimal("150"))


def test_operators_edit_the_fee_in_the_admin(client, organization):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    change = reverse("admin:org_profile_organization_change", args=[organization.pk])
    form = client.get(change).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, list)}
    data.update(
        {
            "platform_fee_percent": "1.5",
            "platform_fee_fixed_cents": "20",
            "refund_roles": '["administrator", "manager"]',
            "saved_card_roles": '["administrator", "manager"]',
            "stripe_requirements_due": "[]",
            "locations-TOTAL_FORMS": "0",
            "locations-INITIAL_FORMS": "0",
        }
    )

    response = client.post(change, data)

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    organization.refresh_from_db()
    assert (organization.platform_fee_percent, organization.platform_fee_fixed_cents) == (Decimal("1.5"), 20)
    audit = AuditEvent.objects.get(action="organization.updated")
    assert (audit.actor_user, audit.changes["platform_fee_fixed_cents"]) == (operator, ["0", "20"])
