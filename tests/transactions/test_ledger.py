"""The ledger: one event per fact, and status and totals derived from the events only."""

import importlib

import pytest

from lumapay.models import ActorType
from transactions.enums import DisputeStatus, RefundStatus, TransactionEventKind as Kind, TransactionStatus
from transactions.gateways.base import RefundFact
from transactions.gateways.sandbox import SandboxGateway
from transactions.sandbox import processor as sandbox_processor
from transactions.models import Dispute, Refund, Transaction, TransactionEvent
from transactions.services.ledger import transaction_event_append, transaction_recalculate
from transactions.services.ledger_facts import charge_fact_record, refund_fact_record

from .payments import DECLINED, card_pay, checkout_transaction, paid_transaction

pytestmark = pytest.mark.django_db


def _append(transaction, kind, amount_cents, key, **kwargs):
    return transaction_event_append(
        transaction=transaction, kind=kind, amount_cents=amount_cents, idempotency_key=key, **kwargs
    )


def _problems(transaction):
    row = Transaction.objects.get(pk=transaction.pk)
    return row.has_unresolved_problems, row.last_error


def _totals(transaction):
    row = Transaction.objects.get(pk=transaction.pk)
    return row.status, row.charged_cents, row.refunded_cents


def test_the_same_event_appended_twice_is_written_once(organization):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)

    first, created = _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    again, created_again = _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert TransactionEvent.objects.filter(transaction=transaction).count() == 1
    assert _totals(transaction) == (TransactionStatus.SUCCEEDED, 4000, 0)


def test_a_charge_fact_recorded_twice_gives_one_event(organization):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    sandbox_processor.card_submit(
        session_id=transaction.gateway_checkout_id, card_number="4242424242424242", expiry_month="12",
        expiry_year="2030", cvc="123",
    )
    fact = SandboxGateway().checkout_outcome(transaction=transaction)

    # The confirmation page and the webhook both report it.
    assert charge_fact_record(transaction=transaction, fact=fact) is True
    assert charge_fact_record(transaction=transaction, fact=fact, gateway_event_id="evt_1") is False

    events = list(TransactionEvent.objects.filter(transaction=transaction).values_list("kind", "amount_cents"))
    assert events == [(Kind.CHARGE_SUCCEEDED, 4000)]
    transaction.refresh_from_db()
    assert (transaction.status, transaction.charged_cents, transaction.card_last4, transaction.gateway_charge_id) == (
        TransactionStatus.SUCCEEDED, 4000, "4242", fact.charge_id
    )
    assert transaction.paid_at is not None


def test_a_refund_fact_recorded_twice_gives_one_event(organization, manager):
    payment = paid_transaction(organization=organization, amount_cents=4000)
    refund = Refund.objects.create(
        organization=organization, transaction=payment, amount_cents=1500, reason="Overpaid", requested_by=manager
    )
    fact = RefundFact(status="succeeded", gateway_refund_id="re_sbx_1", amount_cents=1500)

    assert refund_fact_record(refund=refund, fact=fact) is True
    assert refund_fact_record(refund=refund, fact=fact, gateway_event_id="evt_2") is False

    assert TransactionEvent.objects.filter(transaction=payment, kind=Kind.REFUND_SUCCEEDED).count() == 1
    refund.refresh_from_db()
    assert (refund.status, refund.gateway_refund_id) == (RefundStatus.SUCCEEDED, "re_sbx_1")
    assert _totals(payment) == (TransactionStatus.PARTIALLY_REFUNDED, 4000, 1500)


def test_status_pending_with_only_a_charge_request(organization):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_REQUESTED, 4000, "checkout:cs_1", actor_type=ActorType.PATIENT)

    assert _totals(transaction) == (TransactionStatus.PENDING, 0, 0)


def test_status_failed_after_a_decline(organization):
    transaction = card_pay(checkout_transaction(organization=organization, amount_cents=4000), card_number=DECLINED)

    assert _totals(transaction) == (TransactionStatus.FAILED, 0, 0)
    assert transaction.last_error == "Your card was declined."
    assert transaction.card_last4 == "0002"


def test_status_succeeded_when_a_later_card_pays_after_a_decline(organization):
    transaction = card_pay(checkout_transaction(organization=organization, amount_cents=4000), card_number=DECLINED)
    assert (transaction.has_unresolved_problems, transaction.last_error) == (True, "Your card was declined.")
    transaction = card_pay(transaction)

    assert _totals(transaction) == (TransactionStatus.SUCCEEDED, 4000, 0)
    assert transaction.card_last4 == "4242"
    # the decline is history: the payment that followed resolved it
    row = Transaction.objects.get(pk=transaction.pk)
    assert (row.has_unresolved_problems, row.last_error) == (False, "")


def test_a_failed_refund_stays_a_problem_until_the_same_amount_is_refunded_again(organization):
    # given a paid transaction whose refund of $15 failed
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    first = Refund.objects.create(organization=organization, transaction=transaction, amount_cents=1500, reason="Overpaid")
    second = Refund.objects.create(organization=organization, transaction=transaction, amount_cents=1000, reason="Lab")
    third = Refund.objects.create(organization=organization, transaction=transaction, amount_cents=1500, reason="Again")
    _append(transaction, Kind.REFUND_FAILED, 1500, "refund:1:failed", refund=first, message="Card closed.")
    assert _problems(transaction) == (True, "Card closed.")

    # when another amount is refunded, the problem stays
    _append(transaction, Kind.REFUND_SUCCEEDED, 1000, "refund:2:succeeded", refund=second)
    assert _problems(transaction) == (True, "Card closed.")

    # and a success reported for the failed refund itself resolves nothing (the ledger does not count it)
    _append(transaction, Kind.REFUND_SUCCEEDED, 1500, "refund:1:succeeded", refund=first)
    assert _totals(transaction) == (TransactionStatus.PARTIALLY_REFUNDED, 4000, 1000)
    assert _problems(transaction) == (True, "Card closed.")

    # then a new refund of the same amount that succeeds resolves it
    _append(transaction, Kind.REFUND_SUCCEEDED, 1500, "refund:3:succeeded", refund=third)
    assert _totals(transaction) == (TransactionStatus.PARTIALLY_REFUNDED, 4000, 2500)
    assert _problems(transaction) == (False, "")


def test_a_refund_that_fails_after_it_succeeded_is_a_problem(organization):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    refund = Refund.objects.create(organization=organization, transaction=transaction, amount_cents=4000, reason="Visit cancelled")
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    _append(transaction, Kind.REFUND_SUCCEEDED, 4000, "refund:1:succeeded", refund=refund)
    assert _problems(transaction) == (False, "")

    _append(transaction, Kind.REFUND_FAILED, 4000, "refund:1:failed", refund=refund, message="Card closed.")

    assert _totals(transaction) == (TransactionStatus.SUCCEEDED, 4000, 0)
    assert _problems(transaction) == (True, "Card closed.")


def test_recalculate_reads_the_events_once_and_writes_the_row_once(organization, django_assert_num_queries):
    # given a transaction with a long history: a decline, a payment, refunds, a dispute
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_REQUESTED, 4000, "checkout", actor_type=ActorType.PATIENT)
    _append(transaction, Kind.CHARGE_FAILED, 0, "charge:ch_0:failed", message="Your card was declined.")
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    for number in range(3):
        _append(transaction, Kind.REFUND_REQUESTED, 500, f"refund_requested:{number}", actor_type=ActorType.STAFF)
        _append(transaction, Kind.REFUND_SUCCEEDED, 500, f"refund:re_{number}:succeeded")
    _append(transaction, Kind.DISPUTE_OPENED, 1000, "dispute:dp_1:opened", gateway_reference="dp_1")
    _append(transaction, Kind.DISPUTE_FUNDS_WITHDRAWN, 1000, "dispute:dp_1:funds:txn_1", gateway_reference="dp_1")
    _append(transaction, Kind.DISPUTE_FEE, 1500, "dispute:dp_1:fee:txn_1", gateway_reference="dp_1")
    locked = Transaction.objects.get(pk=transaction.pk)

    # when it is recalculated, then one SELECT of the events and one UPDATE of the row
    with django_assert_num_queries(2):
        transaction_recalculate(transaction=locked)

    assert (locked.status, locked.charged_cents, locked.refunded_cents, locked.disputed_cents, locked.dispute_fee_cents) == (
        TransactionStatus.DISPUTED, 4000, 1500, 1000, 1500
    )
    assert (locked.has_unresolved_problems, locked.last_error) == (False, "")


@pytest.mark.parametrize(
    "refunds, expected",
    [
        ([], (TransactionStatus.SUCCEEDED, 4000, 0)),
        ([1000], (TransactionStatus.PARTIALLY_REFUNDED, 4000, 1000)),
        ([1000, 3000], (TransactionStatus.REFUNDED, 4000, 4000)),
    ],
)
def test_status_after_refunds(organization, refunds, expected):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    for number, amount in enumerate(refunds):
        _append(transaction, Kind.REFUND_REQUESTED, amount, f"refund_requested:{number}", actor_type=ActorType.STAFF)
        _append(transaction, Kind.REFUND_SUCCEEDED, amount, f"refund:re_{number}:succeeded")

    assert _totals(transaction) == expected


def test_requested_and_failed_refunds_do_not_count_as_refunded(organization):
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    _append(transaction, Kind.REFUND_REQUESTED, 4000, "refund_requested:1", actor_type=ActorType.STAFF)
    _append(transaction, Kind.REFUND_FAILED, 4000, "refund:re_1:failed", message="The card issuer declined the refund.")

    assert _totals(transaction) == (TransactionStatus.SUCCEEDED, 4000, 0)
    assert Transaction.objects.get(pk=transaction.pk).last_error == "The card issuer declined the refund."


def test_recalculate_repairs_a_tampered_cache(organization):
    payment = paid_transaction(organization=organization, amount_cents=4000)
    Transaction.objects.filter(pk=payment.pk).update(status=TransactionStatus.PENDING, charged_cents=0)

    transaction_recalculate(transaction=Transaction.objects.get(pk=payment.pk))

    assert _totals(payment) == (TransactionStatus.SUCCEEDED, 4000, 0)


def test_the_webhook_and_the_confirmation_page_converge_on_one_event(organization):
    from transactions.enums import GatewayEventStatus
    from transactions.models import GatewayEvent

    # card_pay lets the Sandbox deliver "charge.succeeded" through the webhook path, then records
    # the same outcome as the confirmation page does.
    payment = paid_transaction(organization=organization, amount_cents=4000)

    assert list(GatewayEvent.objects.values_list("event_type", "status")) == [
        ("charge.succeeded", GatewayEventStatus.PROCESSED)
    ]
    event = TransactionEvent.objects.get(transaction=payment)
    assert (event.kind, event.amount_cents, event.gateway_event_id) == (
        Kind.CHARGE_SUCCEEDED, 4000, GatewayEvent.objects.get().event_id
    )
    assert _totals(payment) == (TransactionStatus.SUCCEEDED, 4000, 0)


def test_a_dispute_recorded_before_balance_transactions_were_read_keeps_its_amount_once(organization):
    # given a chargeback and an inquiry recorded the old way: "dispute opened" carrying the amount
    from django.apps import apps

    migration = importlib.import_module("transactions.migrations.0014_outside_refunds_and_dispute_funds")
    transaction = checkout_transaction(organization=organization, amount_cents=4000)
    _append(transaction, Kind.CHARGE_SUCCEEDED, 4000, "charge:ch_1:succeeded")
    for dispute_id, status in (("dp_old", DisputeStatus.NEEDS_RESPONSE), ("dp_inquiry", DisputeStatus.WARNING_NEEDS_RESPONSE)):
        Dispute.objects.create(
            organization=organization, transaction=transaction, gateway_dispute_id=dispute_id, amount_cents=1000, status=status
        )
        _append(transaction, Kind.DISPUTE_OPENED, 1000, f"dispute:{dispute_id}:opened", gateway_reference=dispute_id)

    # when migration 0013 runs: the chargeback's amount stays withdrawn, the inquiry's is released
    migration.legacy_dispute_funds(apps, None)
    migration.legacy_dispute_funds(apps, None)
    assert transaction_recalculate(transaction=Transaction.objects.get(pk=transaction.pk)).disputed_cents == 1000
    assert TransactionEvent.objects.filter(kind=Kind.DISPUTE_FUNDS_WITHDRAWN).count() == 1

    # then the dispute's balance transactions replace what the migration wrote, never add to it
    _append(transaction, Kind.DISPUTE_FUNDS_WITHDRAWN, 1000, "dispute:dp_old:funds:txn_1", gateway_reference="dp_old")
    assert Transaction.objects.get(pk=transaction.pk).disputed_cents == 1000
    _append(transaction, Kind.DISPUTE_FUNDS_REINSTATED, 1000, "dispute:dp_old:funds:txn_2", gateway_reference="dp_old")
    assert Transaction.objects.get(pk=transaction.pk).disputed_cents == 0
