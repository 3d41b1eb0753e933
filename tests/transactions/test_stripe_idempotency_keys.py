"""Every POST LumaPay sends to Stripe carries an Idempotency-Key built by one helper from our row, the
action and the try (``transactions.gateways.stripe.client.idempotency_key``), in this
installation's namespace: the same row, action and try send the same key, so a retry after an
answer we never heard gets Stripe's first answer; a deliberate new try gets a new key.

The Stripe library would otherwise send a random key per call (it does, for every POST without
one), which protects nothing when our own code tries again. localstripe and the project's fakes
ignore the keys, so these tests look at what was sent (the recording client), not at Stripe's
replay of it."""

import re

import pytest

from lumapay.models import Installation
from transactions.enums import PaymentRequestKind
from transactions.gateways.base import GatewayUnavailable
from transactions.gateways.stripe import StripeGateway
from transactions.gateways.stripe.client import idempotency_key, idempotency_namespace
from transactions.models import SavedCard, Transaction
from transactions.services.payments import checkout_begin
from transactions.services.refunds import refund_create
from transactions.services.saved_cards import (
    authorization_capture,
    authorization_release,
    card_on_file_consent_text,
    saved_card_charge,
    saved_card_remove,
    saved_card_setup_begin,
    saved_card_setup_complete,
)
from transactions.services.stripe_connect import stripe_onboarding_start

from ..stripe_support import stripe_checkout_open, stripe_checkout_paid
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db

KEY = re.compile(r"lumapay:(?P<namespace>[a-z0-9-]+):(?P<row>[a-z_]+):(?P<pk>[1-9]\d*):(?P<action>[a-z_]+):(?P<attempt>[1-9]\d*)")

# Every POST a gateway method sends, as (path pattern, the action its key names).
POSTS = {
    r"/v1/checkout/sessions": {"checkout", "card_setup"},
    r"/v1/checkout/sessions/[^/]+/expire": {"checkout_expire"},
    r"/v1/refunds": {"refund"},
    r"/v1/accounts": {"account"},
    r"/v1/account_links": {"account_link"},
    r"/v1/customers": {"customer"},
    r"/v1/payment_intents": {"charge"},
    r"/v1/payment_intents/[^/]+/capture": {"capture"},
    r"/v1/payment_intents/[^/]+/cancel": {"release"},
    r"/v1/payment_methods/[^/]+/detach": {"detach"},
}


def _card_saved(stripe_world, organization, patient) -> SavedCard:
    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=organization, patient=patient),
        consent_given=True,
        consent_text=card_on_file_consent_text(organization),
        ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/",
        cancel_url="http://testserver/pay/t/details/",
    )
    stripe_world.checkout.save_card(start.checkout_id)
    return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))


def _hold(organization, actor, card, location) -> Transaction:
    return saved_card_charge(
        organization=organization, actor=actor, saved_card=card, amount_cents=3000,
        kind=PaymentRequestKind.COPAY, billing_item="Office visit copay", location=location, hold_only=True,
    )


def test_every_post_to_stripe_carries_a_key_of_our_shape(
    stripe_world, stripe_organization, administrator, manager, location, patient
):
    # given a clinic that connects, takes a checkout, replaces an expired one, refunds, keeps a
    # card, charges it, holds and captures, holds and releases, and removes the card
    stripe_organization.stripe_account_id = None
    stripe_organization.save()
    stripe_onboarding_start(
        organization=stripe_organization, actor=administrator, return_url="http://testserver/r", refresh_url="http://testserver/f"
    )
    stripe_organization.refresh_from_db()
    stripe_world.connect.onboard(stripe_organization.stripe_account_id)
    stripe_organization.stripe_charges_enabled = True
    stripe_organization.save()
    expired = stripe_checkout_open(stripe_organization, patient=patient)
    Transaction.objects.filter(pk=expired.pk).update(gateway_checkout_expires_at=expired.created_at)
    checkout_begin(payment_request=expired.payment_request, ip_address=None)
    paid = stripe_checkout_paid(stripe_world, stripe_organization, patient=patient)
    refund_create(organization=stripe_organization, actor=manager, transaction=paid, amount_cents=500, reason="Overcharged")
    card = _card_saved(stripe_world, stripe_organization, patient)
    saved_card_charge(
        organization=stripe_organization, actor=manager, saved_card=card, amount_cents=4500,
        kind=PaymentRequestKind.BALANCE, billing_item="Balance", location=location,
    )
    authorization_capture(
        organization=stripe_organization, actor=manager, transaction=_hold(stripe_organization, manager, card, location)
    )
    authorization_release(
        organization=stripe_organization, actor=manager, transaction=_hold(stripe_organization, manager, card, location),
        reason="Appointment cancelled",
    )
    saved_card_remove(saved_card=card, actor=manager)

    # then every POST carries a key: our namespace, a row of ours, the action, the try
    posts = stripe_world.http.sent("POST")
    seen = set()
    for request in posts:
        match = KEY.fullmatch(request.idempotency_key or "")
        assert match, f"POST {request.path} carries {request.idempotency_key!r}"
        assert match["namespace"] == Installation.objects.get().namespace
        (pattern,) = [pattern for pattern in POSTS if re.fullmatch(pattern, request.path)]
        assert match["action"] in POSTS[pattern], f"POST {request.path} is keyed as {match['action']}"
        seen.add(pattern)
    assert seen == set(POSTS), f"no POST to {set(POSTS) - seen}"
    # and no two requests share a key: none of them was a retry
    keys = [request.idempotency_key for request in posts]
    assert len(keys) == len(set(keys))
    assert {KEY.fullmatch(key)["action"] for key in keys} == set().union(*POSTS.values())


def test_a_release_retried_after_a_timeout_sends_the_same_key(stripe_world, stripe_organization, manager, location, patient):
    # given a hold whose release Stripe carried out, but whose answer never reached us
    held = _hold(stripe_organization, manager, _card_saved(stripe_world, stripe_organization, patient), location)
    stripe_world.http.fail_after("POST", f"/v1/payment_intents/{held.gateway_checkout_id}/cancel")
    with pytest.raises(GatewayUnavailable):
        authorization_release(organization=stripe_organization, actor=manager, transaction=held, reason="Cancelled")

    # when it is tried again (the beat task tries again on its next run)
    released = authorization_release(organization=stripe_organization, actor=manager, transaction=held, reason="Cancelled")

    # then both requests carried the same key, so Stripe answers the second with the first's outcome
    first, second = stripe_world.http.sent("POST", f"/v1/payment_intents/{held.gateway_checkout_id}/cancel")
    assert first.idempotency_key == second.idempotency_key == idempotency_key(row="transaction", pk=held.pk, action="release")
    assert released.status == "released"


def test_a_card_removal_retried_after_a_timeout_sends_the_same_key(stripe_world, stripe_organization, manager, patient):
    card = _card_saved(stripe_world, stripe_organization, patient)
    stripe_world.http.fail_after("POST", f"/v1/payment_methods/{card.gateway_payment_method_id}/detach")
    with pytest.raises(GatewayUnavailable):
        saved_card_remove(saved_card=card, actor=manager)

    saved_card_remove(saved_card=card, actor=manager)

    first, second = stripe_world.http.sent("POST", f"/v1/payment_methods/{card.gateway_payment_method_id}/detach")
    assert first.idempotency_key == second.idempotency_key == idempotency_key(row="saved_card", pk=card.pk, action="detach")


def test_closing_a_checkout_twice_sends_the_same_key(stripe_world, stripe_organization):
    transaction = stripe_checkout_open(stripe_organization)

    StripeGateway().checkout_expire(transaction=transaction)
    StripeGateway().checkout_expire(transaction=transaction)  # Stripe's answer: already expired

    first, second = stripe_world.http.sent("POST", f"/v1/checkout/sessions/{transaction.gateway_checkout_id}/expire")
    assert first.idempotency_key == second.idempotency_key


def test_a_fresh_checkout_after_one_expired_gets_a_new_key(stripe_world, stripe_organization):
    transaction = stripe_checkout_open(stripe_organization)
    Transaction.objects.filter(pk=transaction.pk).update(gateway_checkout_expires_at=transaction.created_at)

    start = checkout_begin(payment_request=transaction.payment_request, ip_address=None)

    fresh = Transaction.objects.get(gateway_checkout_id=start.checkout_id)
    first, second = [request for request in stripe_world.http.sent("POST") if request.path == "/v1/checkout/sessions"]
    assert first.idempotency_key == idempotency_key(row="transaction", pk=transaction.pk, action="checkout")
    assert second.idempotency_key == idempotency_key(row="transaction", pk=fresh.pk, action="checkout")
    assert first.idempotency_key != second.idempotency_key


def test_onboarding_retried_after_stripe_failed_repeats_its_try_and_a_new_one_gets_a_new_key(
    stripe_world, stripe_organization, administrator
):
    links = dict(organization=stripe_organization, actor=administrator, return_url="http://testserver/r", refresh_url="http://testserver/f")
    # given Stripe failing once while it makes the onboarding link (a 500: it may have made it)
    stripe_world.http.answer_once("POST", "/v1/account_links", status=500, body={"error": {"type": "api_error", "message": "boom"}})
    with pytest.raises(GatewayUnavailable):
        stripe_onboarding_start(**links)

    # when the administrator clicks again, and later once more (an onboarding link works once)
    stripe_onboarding_start(**links)
    stripe_onboarding_start(**links)

    # then the click after the failure repeated the failed try's key; the next one is a new try
    failed, retried, later = [request.idempotency_key for request in stripe_world.http.sent("POST", "/v1/account_links")]
    assert failed == retried == idempotency_key(row="organization", pk=stripe_organization.pk, action="account_link", attempt=1)
    assert later == idempotency_key(row="organization", pk=stripe_organization.pk, action="account_link", attempt=2)


def test_the_namespace_is_this_installations_own_and_can_be_set(settings):
    # given no namespace set: the random one this database was given, the same on every call
    # (a test that empties the tables removes the row made by the migration: it is made again)
    settings.STRIPE_IDEMPOTENCY_NAMESPACE = ""
    namespace = idempotency_namespace()
    stored = Installation.objects.get().namespace
    assert re.fullmatch(r"[0-9a-f]{16}", stored)
    assert namespace == idempotency_namespace() == stored
    assert idempotency_key(row="transaction", pk=7, action="checkout") == f"lumapay:{stored}:transaction:7:checkout:1"

    # when another installation (its own database, or its own setting) keys the same row
    settings.STRIPE_IDEMPOTENCY_NAMESPACE = "clinic-cloud-east"
    other = idempotency_key(row="transaction", pk=7, action="checkout")

    # then the keys differ: bare database ids would have collided on a shared platform account
    assert other == "lumapay:clinic-cloud-east:transaction:7:checkout:1"


def test_the_namespace_row_is_made_again_if_it_is_missing(settings):
    settings.STRIPE_IDEMPOTENCY_NAMESPACE = ""
    Installation.objects.all().delete()

    namespace = idempotency_namespace()

    assert Installation.objects.get().namespace == namespace == idempotency_namespace()
