"""No PHI to Stripe. Every Stripe test runs through the recording client (``stripe_world``), which
checks the values of each request LumaPay sends to Stripe against the PHI of every patient in the
database and fails the test after it ends if any appears (tests/transactions/conftest.py). Here:
patients with varied names (some of them also Stripe's words: Price, Card, Amount, Customer, Mode)
through every Stripe path, with the visit's details checked too, and proof that the check catches
a leak, in values, and not in Stripe's own words."""

import pytest
import stripe

from ehr_sync.models import Patient
from transactions.gateways.stripe import stripe_client
from transactions.models import Transaction
from transactions.services.payments import checkout_begin, checkout_outcome_record
from transactions.services.refunds import refund_create
from transactions.services.stripe_connect import stripe_onboarding_start
from transactions.services.stripe_events import stripe_events_recover

from ..stripe_support import (
    dispute_object,
    event_receive,
    payment_intent_event,
    session_completed_event,
    stripe_event,
    stripe_test_patient,
)
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def evangelina(organization):
    return stripe_test_patient(organization, "Evangelina")


@pytest.mark.parametrize("first_name", ["Evangelina", "Leontyne", "Wilhelmina", "Gideon", "Nguyễn Thị", "José María"])
def test_every_stripe_path_sends_only_opaque_ids(
    stripe_world, stripe_organization, administrator, manager, first_name, django_capture_on_commit_callbacks
):
    patient = stripe_test_patient(stripe_organization, first_name)
    visit_details = ["Oncology follow-up", "Chemotherapy", "cancelled chemo"]
    payment_request = payment_request_make(
        organization=stripe_organization,
        patient=patient,
        amount_cents=12000,
        billing_item="Oncology follow-up",
        note="Chemotherapy copay",
    )

    start = checkout_begin(payment_request=payment_request, ip_address="127.0.0.1")
    transaction = Transaction.objects.get(gateway_checkout_id=start.checkout_id)
    stripe_world.checkout.pay(start.checkout_id)
    with django_capture_on_commit_callbacks(execute=True):
        event_receive(payment_intent_event(stripe_world, transaction))
        event_receive(session_completed_event(stripe_world, transaction))
        checkout_outcome_record(transaction=transaction)
    transaction.refresh_from_db()
    refund_create(
        organization=stripe_organization,
        actor=manager,
        transaction=transaction,
        amount_cents=2000,
        reason=f"{patient.full_name}: cancelled chemo, born {patient.date_of_birth:%m/%d/%Y}",
    )
    intent = stripe_world.server.call("GET", f"/v1/payment_intents/{transaction.gateway_charge_id}")
    with django_capture_on_commit_callbacks(execute=True):
        event_receive(
            stripe_event(
                "charge.dispute.created",
                dispute_object(
                    charge=intent["latest_charge"]["id"], payment_intent=None, amount_cents=10000, status="needs_response"
                ),
                account=stripe_organization.stripe_account_id,
            )
        )
        stripe_events_recover()
    stripe_organization.stripe_account_id = None
    stripe_organization.save()
    stripe_onboarding_start(
        organization=stripe_organization, actor=administrator, return_url="http://testserver/r", refresh_url="http://testserver/f"
    )

    sent = stripe_world.http.recorded
    for method, path in [
        ("POST", "/v1/checkout/sessions"),
        ("GET", "/v1/checkout/sessions/"),
        ("GET", "/v1/payment_intents/"),
        ("GET", "/v1/refunds"),
        ("POST", "/v1/refunds"),
        ("GET", "/v1/charges/"),
        ("GET", "/v1/events"),
        ("POST", "/v1/accounts"),
        ("POST", "/v1/account_links"),
    ]:
        assert stripe_world.http.sent(method, path), f"no {method} {path} was sent"
    assert stripe_world.http.leaks == []
    for request in sent:
        for detail in visit_details:
            assert detail.lower() not in request.text().lower(), f"{request.method} {request.path} carries {detail!r}"
    assert stripe_world.checkout.line_item_names == ["Payment to Riverside Family Medicine"]
    assert Patient.objects.filter(pk=patient.pk).exists()  # the check looked at them


@pytest.mark.parametrize(
    "params, found",
    [
        ({"name": "Evangelina Quintanilla-Okafor"}, {"first name 'Evangelina'", "last name 'Quintanilla-Okafor'"}),
        ({"email": "EVANGELINA.Q@mail.example"}, {"e-mail 'evangelina.q@mail.example'", "first name 'Evangelina'"}),
        ({"phone": "(617) 555-0123", "metadata": {"dob": "1961-07-23"}}, {"date of birth 1961-07-23", "phone '+16175550123'"}),
        ({"phone": "+16175550123"}, {"phone '+16175550123'"}),
        ({"metadata": {"mrn": "MRN-EQ-7781"}}, {"medical record number 'MRN-EQ-7781'"}),
        ({"description": "born 7/23/1961"}, {"date of birth 7/23/1961"}),
    ],
)
def test_the_check_catches_each_kind_of_phi(stripe_world, evangelina, params, found):
    # A request LumaPay never makes, sent through the same client to prove the check would fail.
    stripe_client().v1.customers.create(params)

    assert {leak.what for leak in stripe_world.http.leaks} == found
    stripe_world.http.leaks.clear()  # this test's leak is on purpose


@pytest.mark.parametrize(
    "params",
    [
        # Stripe's words as form keys: line_items[0][price_data][unit_amount], customer, mode …
        {"line_items": [{"price_data": {"currency": "usd", "unit_amount": 4500}, "quantity": 1}], "mode": "payment"},
        {"customer": "cus_123", "payment_method_types": ["card"], "capture_method": "manual", "amount": 4500},
        {"metadata": {"lumapay_transaction_id": "7"}, "expand": ["latest_charge.balance_transaction", "payment_method"]},
    ],
)
def test_names_that_are_stripes_words_are_not_found_in_stripes_words(stripe_world, organization, params):
    # given patients named Price, Card, Amount, Customer, Mode and Line (a Norwegian first name)
    for first_name in ("Leontyne", "Wilhelmina", "Gideon", "Rosalind", "Ingrid", "Line"):
        stripe_test_patient(organization, first_name)

    # (a made-up request: localstripe refuses it, after the recording client has checked it)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client().v1.customers.create(params)

    assert len(stripe_world.http.recorded) == 1
    assert stripe_world.http.leaks == []


@pytest.mark.parametrize(
    "params, found",
    [
        ({"description": "Leontyne Price"}, {"first name 'Leontyne'", "last name 'Price'"}),
        ({"description": "price"}, {"last name 'Price'"}),  # a whole value
        ({"metadata": {"patient": "PRICE"}}, {"last name 'Price'"}),
        ({"metadata": {"Price": "yes"}}, {"last name 'Price'"}),  # metadata keys are ours: data too
        ({"metadata": {"note": "seen by Dr. Card today"}}, {"last name 'Card'"}),  # a word in a value
        ({"name": "José María García Márquez"}, {"first name 'José María'", "last name 'García Márquez'"}),
        ({"name": "Prices and cards"}, set()),  # not the whole word
        ({"name": "Garcia"}, set()),  # not the whole name
    ],
)
def test_the_check_finds_names_as_whole_words_in_values(stripe_world, organization, params, found):
    for first_name in ("Leontyne", "Wilhelmina", "José María"):
        stripe_test_patient(organization, first_name)

    stripe_client().v1.customers.create(params)

    assert {leak.what for leak in stripe_world.http.leaks} == found
    stripe_world.http.leaks.clear()  # this test's leak is on purpose
