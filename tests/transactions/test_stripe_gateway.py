"""The Stripe gateway against localstripe: Checkout (answered from Stripe's own example object,
because localstripe has no Checkout; the payment itself is a real localstripe PaymentIntent), the
outcome the confirmation page reads, refunds, and the mapping of Stripe's errors."""

import pytest
import stripe
from django.conf import settings as django_settings
from django.urls import reverse

from ehr_sync.enums import PreferredLanguage
from lumapay.errors import ApplicationError
from transactions.enums import PaymentRequestStatus, RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways import gateway_for, gateway_named
from transactions.gateways.base import GatewayError, GatewayUnavailable
from transactions.gateways.stripe import StripeGateway, charge_fact_from_payment_intent
from transactions.gateways.stripe.client import idempotency_key
from transactions.links import payment_link_token
from transactions.models import Refund, Transaction, TransactionEvent
from transactions.services.payments import checkout_begin, checkout_outcome_record
from transactions.services.refunds import RefundFailed, refund_create, refund_retry

from ..factories import PatientFactory
from ..stripe_builders import balance_transaction_build, charge_build, payment_intent_build
from ..stripe_support import (
    CARD_DECLINED_AT_CHARGE,
    stripe_checkout_open,
    stripe_checkout_paid,
    stripe_clinic,
)
from .pay_support import checkout_path, payment_request_make, verified

pytestmark = pytest.mark.django_db


def _ledger(transaction):
    return list(
        TransactionEvent.objects.filter(transaction=transaction)
        .order_by("id")
        .values_list("kind", "amount_cents", "idempotency_key")
    )


def test_the_stripe_gateway_is_chosen_by_the_organization(stripe_organization):
    assert isinstance(gateway_named("stripe"), StripeGateway)
    assert isinstance(gateway_for(stripe_organization), StripeGateway)


def test_every_request_pins_the_api_version_and_the_pinned_version_is_the_librarys(stripe_world, stripe_organization):
    stripe_checkout_paid(stripe_world, stripe_organization)

    assert django_settings.STRIPE_API_VERSION == stripe._api_version._ApiVersion.CURRENT
    sent = stripe_world.http.recorded
    assert len(sent) >= 3
    assert {request.headers.get("Stripe-Version") for request in sent} == {django_settings.STRIPE_API_VERSION}


def test_paying_a_request_opens_a_checkout_session_on_the_clinics_account(stripe_world, stripe_organization, patient):
    # localstripe has no Checkout: the session comes from Stripe's own checkout.session example,
    # answered by the recording client (tests/stripe_support.py, FakeCheckout).
    payment_request = payment_request_make(organization=stripe_organization, patient=patient, amount_cents=4500)

    start = checkout_begin(payment_request=payment_request, ip_address="127.0.0.1")

    transaction = Transaction.objects.get(payment_request=payment_request)
    (create,) = stripe_world.http.sent("POST", "/v1/checkout/sessions")
    token = payment_link_token(payment_request)
    assert create.account == stripe_organization.stripe_account_id
    assert create.params == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "4500",
                    "product_data": {"name": "Payment to Riverside Family Medicine"},
                },
            }
        ],
        "client_reference_id": str(transaction.pk),
        "metadata": {"lumapay_transaction_id": str(transaction.pk), "lumapay_organization_id": str(stripe_organization.pk)},
        "payment_intent_data": {
            "metadata": {"lumapay_transaction_id": str(transaction.pk), "lumapay_organization_id": str(stripe_organization.pk)}
        },
        "success_url": "http://testserver" + reverse("pay:done", kwargs={"token": token}),
        "cancel_url": "http://testserver" + reverse("pay:cancelled", kwargs={"token": token}),
        "expires_at": create.params["expires_at"],
        "locale": "auto",
    }
    session = stripe_world.checkout.sessions[start.checkout_id]
    assert (transaction.vendor, transaction.gateway_checkout_id, transaction.gateway_checkout_url) == (
        "stripe", session["id"], session["url"]
    )
    assert start.redirect_url == session["url"]
    assert int(transaction.gateway_checkout_expires_at.timestamp()) == session["expires_at"]
    assert _ledger(transaction) == [(Kind.CHARGE_REQUESTED, 4500, f"checkout:{session['id']}")]


def test_a_second_press_of_pay_resumes_the_same_session(stripe_world, stripe_organization):
    payment_request = payment_request_make(organization=stripe_organization, amount_cents=4500)

    first = checkout_begin(payment_request=payment_request, ip_address=None)
    second = checkout_begin(payment_request=payment_request, ip_address=None)

    assert second.checkout_id == first.checkout_id
    assert len(stripe_world.http.sent("POST", "/v1/checkout/sessions")) == 1
    assert Transaction.objects.filter(payment_request=payment_request).count() == 1


@pytest.mark.parametrize("onboarded", [False, None])
def test_a_clinic_that_cannot_take_stripe_payments_yet_is_refused_and_nothing_is_written(stripe_world, organization, onboarded):
    if onboarded is None:
        organization.payment_gateway = "stripe"
        organization.save()
        expected = "This clinic has not connected a Stripe account yet."
    else:
        stripe_clinic(stripe_world, organization, onboarded=False)
        expected = "This clinic cannot take card payments through Stripe yet"
    payment_request = payment_request_make(organization=organization)

    with pytest.raises(GatewayError) as refused:
        checkout_begin(payment_request=payment_request, ip_address=None)

    assert refused.value.message.startswith(expected)
    assert Transaction.objects.count() == 0
    assert stripe_world.http.sent("POST", "/v1/checkout/sessions") == []


def test_the_confirmation_page_records_the_payment_with_card_and_charge(stripe_world, stripe_organization):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000, record=False)
    session = stripe_world.checkout.sessions[transaction.gateway_checkout_id]

    fact = checkout_outcome_record(transaction=transaction)

    transaction.refresh_from_db()
    payment_intent = session["payment_intent"]
    assert (fact.status, fact.charge_id, fact.amount_cents) == ("succeeded", payment_intent, 10000)
    assert (transaction.status, transaction.charged_cents, transaction.gateway_charge_id) == (
        TransactionStatus.SUCCEEDED, 10000, payment_intent
    )
    assert (transaction.card_brand, transaction.card_last4, transaction.fee_cents) == ("visa", "4242", 0)
    assert transaction.payment_request.status == PaymentRequestStatus.PAID
    assert _ledger(transaction)[1:] == [(Kind.CHARGE_SUCCEEDED, 10000, f"charge:{payment_intent}:succeeded")]
    (read,) = stripe_world.http.sent("GET", f"/v1/payment_intents/{payment_intent}")
    assert read.account == stripe_organization.stripe_account_id
    assert read.params == {"expand": ["latest_charge.balance_transaction", "payment_method"]}
    # Reading it again (a reload of the page) writes nothing more.
    checkout_outcome_record(transaction=transaction)
    assert len(_ledger(transaction)) == 2


def test_a_card_declined_at_charge_time_is_recorded_as_a_failure(stripe_world, stripe_organization):
    transaction = stripe_checkout_paid(
        stripe_world, stripe_organization, card_number=CARD_DECLINED_AT_CHARGE, record=False
    )

    fact = checkout_outcome_record(transaction=transaction)

    transaction.refresh_from_db()
    assert (fact.status, fact.failure_code, fact.failure_message) == ("failed", "card_declined", "Your card was declined.")
    assert fact.charge_id.startswith("ch_")
    assert (transaction.status, transaction.charged_cents, transaction.last_error) == (
        TransactionStatus.FAILED, 0, "Your card was declined."
    )
    assert (transaction.card_brand, transaction.card_last4) == ("visa", "0341")
    assert [row[:2] for row in _ledger(transaction)] == [(Kind.CHARGE_REQUESTED, 10000), (Kind.CHARGE_FAILED, 0)]
    assert stripe_world.checkout.sessions[transaction.gateway_checkout_id]["status"] == "open"


def test_an_unpaid_session_is_pending(stripe_world, stripe_organization):
    transaction = stripe_checkout_open(stripe_organization)

    fact = checkout_outcome_record(transaction=transaction)

    assert fact.status == "pending"
    assert len(_ledger(transaction)) == 1


def test_an_expired_checkout_is_closed_at_stripe_before_a_new_one_replaces_it(stripe_world, stripe_organization):
    transaction = stripe_checkout_open(stripe_organization)
    Transaction.objects.filter(pk=transaction.pk).update(gateway_checkout_expires_at=transaction.created_at)

    start = checkout_begin(payment_request=transaction.payment_request, ip_address=None)

    assert start.checkout_id != transaction.gateway_checkout_id
    assert stripe_world.checkout.sessions[transaction.gateway_checkout_id]["status"] == "expired"
    (expire,) = stripe_world.http.sent("POST", f"/v1/checkout/sessions/{transaction.gateway_checkout_id}/expire")
    assert expire.account == stripe_organization.stripe_account_id


def test_expiring_a_session_paid_meanwhile_records_the_payment_instead(stripe_world, stripe_organization):
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, record=False)

    fact = StripeGateway().checkout_expire(transaction=transaction)

    assert fact.status == "succeeded"
    assert stripe_world.checkout.sessions[transaction.gateway_checkout_id]["status"] == "complete"


def test_the_fee_card_and_authorization_code_come_from_the_charge_and_its_balance_transaction(stripe_world):
    # localstripe's fee is always 0 and its charges carry no payment_method_details: objects of
    # Stripe's real shape (tests/stripe_builders.py) show them.
    intent = payment_intent_build()
    balance_transaction = balance_transaction_build(amount=10000, fee=320)
    charge = charge_build(payment_intent=intent["id"], amount=10000, balance_transaction=balance_transaction)
    charge["payment_method_details"]["card"].update(brand="mastercard", last4="4444", authorization_code="842913")
    intent.update(status="succeeded", amount=10000, amount_received=10000, latest_charge=charge)

    fact = charge_fact_from_payment_intent(intent)

    assert (fact.status, fact.charge_id, fact.amount_cents) == ("succeeded", intent["id"], 10000)
    assert (fact.card_brand, fact.card_last4, fact.authorization_code, fact.fee_cents) == ("mastercard", "4444", "842913", 320)


# -- refunds ---------------------------------------------------------------------------------------


@pytest.fixture
def paid(stripe_world, stripe_organization, patient):
    return stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=10000, patient=patient)


def test_a_full_refund_goes_to_stripe_with_its_stored_key(stripe_world, stripe_organization, manager, paid):
    refund = refund_create(
        organization=stripe_organization, actor=manager, transaction=paid, amount_cents=10000, reason="Visit cancelled"
    )

    paid.refresh_from_db()
    (at_stripe,) = stripe_world.server.refunds_of(paid.gateway_charge_id)
    (create,) = stripe_world.http.sent("POST", "/v1/refunds")
    assert create.account == stripe_organization.stripe_account_id
    assert create.headers["Idempotency-Key"] == idempotency_key(row="refund", pk=refund.pk, action="refund")
    assert create.params == {
        "payment_intent": paid.gateway_charge_id,
        "amount": "10000",
        "metadata": {"lumapay_refund_id": str(refund.pk), "lumapay_idempotency_key": str(refund.idempotency_key)},
    }
    assert "Visit cancelled" not in create.body  # the staff's reason stays with us
    assert (refund.status, refund.gateway_refund_id) == (RefundStatus.SUCCEEDED, at_stripe["id"])
    assert (at_stripe["amount"], at_stripe["status"]) == (10000, "succeeded")
    assert (paid.status, paid.refunded_cents) == (TransactionStatus.REFUNDED, 10000)
    assert [row[:2] for row in _ledger(paid)][-2:] == [(Kind.REFUND_REQUESTED, 10000), (Kind.REFUND_SUCCEEDED, 10000)]


def test_partial_refunds(stripe_world, stripe_organization, manager, paid):
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=2500, reason="Lab fee waived")
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=7500, reason="Visit cancelled")

    paid.refresh_from_db()
    assert sorted(r["amount"] for r in stripe_world.server.refunds_of(paid.gateway_charge_id)) == [2500, 7500]
    assert (paid.status, paid.refunded_cents) == (TransactionStatus.REFUNDED, 10000)
    with pytest.raises(ApplicationError, match="already been refunded in full"):
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=1, reason="Again")
    assert len(stripe_world.server.refunds_of(paid.gateway_charge_id)) == 2


def test_a_refund_stripe_refuses_is_recorded_as_failed_with_stripes_message(stripe_world, stripe_organization, manager, paid):
    # localstripe accepts every refund; Stripe refuses some (here, a charged-back payment).
    stripe_world.http.answer_once(
        "POST",
        "/v1/refunds",
        status=400,
        body={"error": {"type": "invalid_request_error", "code": "charge_disputed", "message": "Charge ch_1 has been charged back; cannot issue a refund."}},
    )

    with pytest.raises(RefundFailed) as failed:
        refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=4000, reason="Goodwill")

    refund = Refund.objects.get()
    paid.refresh_from_db()
    assert failed.value.message == (
        "The payment processor refused the refund of $40.00: Charge ch_1 has been charged back; cannot issue a refund. "
        "Nothing was refunded."
    )
    assert (refund.status, refund.failure_message) == (RefundStatus.FAILED, "Charge ch_1 has been charged back; cannot issue a refund.")
    assert (paid.status, paid.refunded_cents, paid.last_error) == (
        TransactionStatus.SUCCEEDED, 0, "Charge ch_1 has been charged back; cannot issue a refund."
    )
    assert stripe_world.server.refunds_of(paid.gateway_charge_id) == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": {"error": {"type": "api_error", "message": "An unknown error occurred"}}},
        {"status": 429, "body": {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests"}}},
    ],
)
def test_a_5xx_or_rate_limit_leaves_the_refund_requested_for_a_retry(stripe_world, stripe_organization, manager, paid, answer):
    stripe_world.http.answer_once("POST", "/v1/refunds", **answer)

    refund = refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=4000, reason="Goodwill")

    paid.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED
    assert (paid.refunded_cents, paid.status) == (0, TransactionStatus.SUCCEEDED)

    retried = refund_retry(organization=stripe_organization, actor=manager, refund=refund)

    paid.refresh_from_db()
    assert retried.status == RefundStatus.SUCCEEDED
    assert [r["amount"] for r in stripe_world.server.refunds_of(paid.gateway_charge_id)] == [4000]
    assert paid.refunded_cents == 4000


def test_stripe_unreachable_is_gateway_unavailable(stripe_world, stripe_organization, paid, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens on the discard port

    with pytest.raises(GatewayUnavailable, match="Stripe did not answer while reading the payment"):
        StripeGateway().checkout_outcome(transaction=paid)


def test_a_refund_on_another_clinics_account_is_never_made(stripe_world, stripe_organization, other_organization, manager, paid):
    stripe_clinic(stripe_world, other_organization)

    with pytest.raises(ApplicationError):
        refund_create(organization=other_organization, actor=manager, transaction=paid, amount_cents=100, reason="x")

    assert stripe_world.http.sent("POST", "/v1/refunds") == []


def test_a_patient_pays_through_stripe_checkout_from_the_link(client, stripe_world, stripe_organization, patient):
    from .pay_support import pay_url, text, verified

    payment_request = payment_request_make(organization=stripe_organization, patient=patient, amount_cents=4500)
    verified(client, payment_request)

    to_checkout = client.post(pay_url("checkout", payment_request))

    transaction = Transaction.objects.get(payment_request=payment_request)
    assert to_checkout.status_code == 302
    assert to_checkout["Location"] == stripe_world.checkout.sessions[transaction.gateway_checkout_id]["url"]
    assert to_checkout["Location"].startswith("https://checkout.stripe.com/")

    stripe_world.checkout.pay(transaction.gateway_checkout_id)  # the patient pays on Stripe's page
    confirmation = client.get(pay_url("done", payment_request))

    transaction.refresh_from_db()
    assert confirmation.status_code == 200
    assert "$45.00" in text(confirmation)
    assert (transaction.status, transaction.card_last4) == (TransactionStatus.SUCCEEDED, "4242")
    payment_request.refresh_from_db()
    assert payment_request.status == PaymentRequestStatus.PAID


def test_a_spanish_speaking_patients_stripe_checkout_opens_in_spanish(client, stripe_world, stripe_organization):
    # Stripe Checkout's pages follow the session's locale: the pay page passes the language the
    # patient reads it in, not the browser's ("auto").
    patient = PatientFactory(organization=stripe_organization, preferred_language=PreferredLanguage.SPANISH)
    payment_request = payment_request_make(organization=stripe_organization, patient=patient, amount_cents=4500)
    verified(client, payment_request)

    checkout_path(client, payment_request)

    (create,) = stripe_world.http.sent("POST", "/v1/checkout/sessions")
    assert create.params["locale"] == "es"
