"""``saved_card_charge`` called by LumaPay itself (``actor=None`` and a collection rule), and with a
caller's idempotency key (a plan instalment's attempt), against localstripe."""

import pytest

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from transactions.enums import CollectionRule, PaymentRequestKind, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.stripe.client import idempotency_key
from transactions.models import SavedCard, Transaction, TransactionEvent
from transactions.services.saved_cards import (
    card_on_file_consent_text,
    saved_card_charge,
    saved_card_setup_begin,
    saved_card_setup_complete,
)

from ..factories import AppointmentFactory
from .pay_support import payment_request_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def card(stripe_world, stripe_organization, patient) -> SavedCard:
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


def _charge(organization, card, location, **overrides):
    arguments = {
        "organization": organization,
        "actor": None,
        "saved_card": card,
        "amount_cents": 3000,
        "kind": PaymentRequestKind.COPAY,
        "billing_item": "Office visit copay",
        "location": location,
        **overrides,
    }
    return saved_card_charge(**arguments)


def test_lumapay_holds_a_copay_by_the_hold_rule_as_the_system(stripe_world, stripe_organization, location, card):
    appointment = AppointmentFactory(patient=card.patient, organization=stripe_organization, location=location)

    held = _charge(stripe_organization, card, location, appointment=appointment, hold_only=True, rule=CollectionRule.HOLD_BEFORE_VISIT)

    assert (held.status, held.automation_rule, held.appointment) == (
        TransactionStatus.AUTHORIZED, CollectionRule.HOLD_BEFORE_VISIT, appointment
    )
    (create,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert create.params["capture_method"] == "manual"
    assert create.idempotency_key == idempotency_key(row="transaction", pk=held.pk, action="charge")
    requested = TransactionEvent.objects.get(transaction=held, kind=Kind.CHARGE_REQUESTED)
    assert (requested.actor_type, requested.actor_user, requested.idempotency_key) == ("system", None, f"saved_card_charge:{held.pk}")
    audit = AuditEvent.objects.get(action="saved_card.hold_requested")
    assert (audit.actor_type, audit.actor_user, audit.transaction) == ("system", None, held)
    assert audit.changes == {"saved_card": card.pk, "amount_cents": 3000, "rule": "hold_before_visit"}


def test_lumapay_needs_a_rule_and_staff_cannot_name_one(stripe_world, stripe_organization, manager, location, card):
    with pytest.raises(ApplicationError, match="only by a collection rule"):
        _charge(stripe_organization, card, location)
    with pytest.raises(ApplicationError, match="only by a collection rule"):
        _charge(stripe_organization, card, location, rule="whenever")
    with pytest.raises(ApplicationError, match="LumaPay.s own"):
        _charge(stripe_organization, card, location, actor=manager, rule=CollectionRule.PLAN_INSTALMENT)

    assert Transaction.objects.count() == 0
    assert stripe_world.http.sent("POST", "/v1/payment_intents") == []


def test_the_organizations_limit_holds_for_lumapay_too(stripe_world, stripe_organization, location, card):
    stripe_organization.saved_card_charge_max_cents = 2000
    stripe_organization.save(update_fields=["saved_card_charge_max_cents"])

    with pytest.raises(ApplicationError, match="more than this organization allows for one hold"):
        _charge(stripe_organization, card, location, hold_only=True, rule=CollectionRule.HOLD_BEFORE_VISIT)

    assert Transaction.objects.count() == 0
    refused = AuditEvent.objects.get(action="saved_card.refused")
    assert (refused.actor_type, refused.actor_user) == ("system", None)
    assert refused.changes == {"attempted": "hold", "reason": "limit", "amount_cents": 3000, "rule": "hold_before_visit"}


def test_a_charge_with_a_callers_key_is_made_once_however_often_it_is_asked(stripe_world, stripe_organization, location, card):
    key = "lumapay:plan:17:instalment:3:attempt:1"

    first = _charge(stripe_organization, card, location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=key)
    again = _charge(stripe_organization, card, location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=key)

    assert again == first
    assert (first.status, first.charged_cents, first.automation_rule) == (TransactionStatus.SUCCEEDED, 3000, "plan_instalment")
    (create,) = stripe_world.http.sent("POST", "/v1/payment_intents")
    assert create.idempotency_key == key
    assert TransactionEvent.objects.get(kind=Kind.CHARGE_REQUESTED).idempotency_key == key
    assert Transaction.objects.count() == 1
    # another attempt (another key) is another charge
    other = _charge(stripe_organization, card, location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=key[:-1] + "2")
    assert other != first and Transaction.objects.count() == 2


def test_a_retry_after_stripes_answer_was_lost_asks_again_with_the_same_key(stripe_world, stripe_organization, location, card):
    # given a charge Stripe made but whose answer never reached us (the transaction stays pending)
    key = "lumapay:plan:17:instalment:4:attempt:1"
    stripe_world.http.fail_after("POST", "/v1/payment_intents")
    pending = _charge(stripe_organization, card, location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=key)
    assert (pending.status, pending.gateway_checkout_id) == (TransactionStatus.PENDING, "")

    # when the instalment is tried again with the same key
    settled = _charge(stripe_organization, card, location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=key)

    # then the same transaction is settled, and Stripe was asked twice with one key (real Stripe
    # answers the second with the first's PaymentIntent; localstripe ignores keys)
    assert settled == pending and Transaction.objects.count() == 1
    assert (settled.status, settled.charged_cents) == (TransactionStatus.SUCCEEDED, 3000)
    assert [request.idempotency_key for request in stripe_world.http.sent("POST", "/v1/payment_intents")] == [key, key]


def test_staff_charges_are_recorded_as_before(stripe_world, stripe_organization, manager, location, card):
    charged = _charge(stripe_organization, card, location, actor=manager, kind=PaymentRequestKind.BALANCE, billing_item="Balance")

    assert (charged.status, charged.automation_rule) == (TransactionStatus.SUCCEEDED, "")
    requested = TransactionEvent.objects.get(transaction=charged, kind=Kind.CHARGE_REQUESTED)
    assert (requested.actor_type, requested.actor_user, requested.idempotency_key) == ("staff", manager, f"saved_card_charge:{charged.pk}")
    audit = AuditEvent.objects.get(action="saved_card.charge_requested")
    assert (audit.actor_type, audit.actor_user, audit.changes) == ("staff", manager, {"saved_card": card.pk, "amount_cents": 3000})
