"""The Stripe gateway's side of payouts: a clinic's payouts, what each carries, and its balance, read
from its connected account, and the payout and balance events turned into facts.

localstripe has no payouts, balance or Connect: ``FakePayouts`` (tests/stripe_support.py) serves
them from the project's builders, with Stripe's cursor paging and the Stripe-Account header checked.
The ``stripe_world`` fixture fails any test whose requests carried a patient's PHI.
"""

import datetime
from types import SimpleNamespace

import pytest

from transactions.gateways.base import (
    BalanceAmount,
    BalanceFact,
    GatewayError,
    GatewayUnavailable,
    NextPayout,
    PayoutFact,
)
from transactions.gateways.stripe import StripeGateway
from transactions.gateways.stripe import payouts as stripe_payouts
from transactions.gateways.stripe.payouts import next_payout_day

from ..stripe_support import (
    adjustment_line,
    charge_line,
    dispute_withdrawal_line,
    every_kind_lines,
    phi_found_in,
    refund_line,
    stripe_checkout_paid,
    stripe_event,
    stripe_fee_line,
    stripe_test_patient,
)

pytestmark = pytest.mark.django_db

UTC = datetime.timezone.utc


@pytest.fixture
def gateway():
    return StripeGateway()


@pytest.fixture
def account(stripe_organization):
    return stripe_organization.stripe_account_id


def _lines(gateway, organization, payout) -> list:
    return list(gateway.payout_lines(organization=organization, gateway_payout_id=payout["id"]))


# -- a payout's lines ------------------------------------------------------------------------------


def test_a_payout_of_more_than_a_hundred_transactions_is_read_across_pages_and_adds_up_to_the_cent(
    gateway, stripe_world, stripe_organization, account
):
    lines = [charge_line(1000 + index * 37, application_fee_cents=index % 5) for index in range(230)]
    lines += [refund_line(555 + index) for index in range(12)]
    lines += [stripe_fee_line(199), dispute_withdrawal_line(4321), adjustment_line(-17)]
    payout = stripe_world.payouts.payout_add(account, lines, status="paid")

    found = _lines(gateway, stripe_organization, payout)

    assert len(found) == len(lines) == 245
    assert sum(line.net_cents for line in found) == payout["amount"] == sum(line["net"] for line in lines)
    assert {line.gateway_line_id for line in found} == {line["id"] for line in lines}
    # 246 balance transactions (the payout's own with them): three pages of at most 100, each
    # one after the last one read, all on the clinic's account.
    pages = stripe_world.http.sent("GET", "/v1/balance_transactions")
    assert [page.params.get("starting_after") for page in pages][0] is None
    assert len(pages) == 3 and all(page.params.get("starting_after") for page in pages[1:])
    assert {(page.account, page.params["payout"], page.params["limit"]) for page in pages} == {(account, payout["id"], "100")}
    assert all(page.params["expand"] == ["data.source"] for page in pages)


def test_the_payouts_own_withdrawal_is_not_one_of_its_lines(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add(account, [charge_line(10000)])

    found = _lines(gateway, stripe_organization, payout)

    listed = [line["id"] for line in stripe_world.payouts.lines[payout["id"]]]
    assert payout["balance_transaction"] in listed and len(listed) == 2
    assert [line.gateway_line_id for line in found] == [listed[1]]
    assert found[0].net_cents == payout["amount"] == 10000 - 320


def test_each_kind_of_balance_transaction_becomes_its_line(gateway, stripe_world, stripe_organization, account):
    pis = ["pi_3Paid0000000000000000001", "pi_3Paid0000000000000000002", "pi_3Paid0000000000000000003", "pi_3Paid0000000000000000004"]
    lines = every_kind_lines(payment_intents=pis)
    payout = stripe_world.payouts.payout_add(account, lines)

    found = {line.gateway_line_id: line for line in _lines(gateway, stripe_organization, payout)}

    read = [found[line["id"]] for line in lines]
    assert [(line.kind, line.amount_cents, line.fee_cents, line.net_cents, line.charge_id) for line in read] == [
        ("charge", 12000, 378 + 120, 12000 - 498, pis[0]),
        ("charge", 8000, 262, 8000 - 262, pis[1]),
        ("refund", -2500, 0, -2500, pis[0]),
        ("refund_failure", 1000, 0, 1000, pis[2]),
        ("dispute", -4000, 1500, -5500, pis[3]),
        ("dispute_reversal", 4000, 0, 4000, pis[3]),
        ("fee", -500, 0, -500, ""),
        ("fee", -75, 0, -75, ""),
        ("adjustment", -325, 0, -325, ""),
        ("adjustment", 1000, 0, 1000, ""),
        ("payout_failure", 6000, 0, 6000, ""),
    ]
    # The source is the charge, refund, dispute or failed payout itself, by id.
    assert [line.source_id for line in read] == [
        line["source"]["id"] if isinstance(line["source"], dict) else (line["source"] or "") for line in lines
    ]
    assert read[-1].source_id.startswith("po_") and read[4].source_id.startswith("dp_") and read[2].source_id.startswith("re_")
    assert sum(line.net_cents for line in read) == payout["amount"]
    assert all(line.currency == "usd" for line in read)
    assert all(line.created.tzinfo is not None for line in read)
    expected_day = datetime.datetime.fromtimestamp(lines[0]["available_on"], tz=UTC).date()
    assert read[0].available_on == expected_day
    assert read[6].description == "Radar for Fraud Teams"


def test_a_line_names_the_payment_as_the_ledger_knows_it(gateway, stripe_world, stripe_organization, account):
    """The ledger keys a Stripe payment by its PaymentIntent: a charge's and a refund's line carry
    that id, so the payouts app finds our transaction by it."""
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=15000)
    payout = stripe_world.payouts.payout_add(
        account, [charge_line(15000, payment_intent=transaction.gateway_charge_id), refund_line(5000, payment_intent=transaction.gateway_charge_id)]
    )

    found = _lines(gateway, stripe_organization, payout)

    assert transaction.gateway_charge_id.startswith("pi_")
    assert [line.charge_id for line in found] == [transaction.gateway_charge_id] * 2


def test_a_charge_line_whose_source_is_not_expanded_still_names_the_charge():
    from transactions.gateways.stripe.facts import payout_line_from_balance_transaction

    line = charge_line(1000)
    line["source"] = "ch_3Unexpanded000000000000"

    assert payout_line_from_balance_transaction(line).charge_id == "ch_3Unexpanded000000000000"


def test_another_clinics_payout_is_not_found_on_this_account(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add("acct_someoneelse000000", [charge_line(1000)])

    with pytest.raises(GatewayError, match="No such payout"):
        _lines(gateway, stripe_organization, payout)
    with pytest.raises(GatewayError, match="No such payout"):
        gateway.payout_get(organization=stripe_organization, gateway_payout_id=payout["id"])


# -- payouts ---------------------------------------------------------------------------------------


def test_payouts_list_reads_every_page_after_the_date_with_the_bank_account(gateway, stripe_world, stripe_organization, account):
    start = 1_780_000_000
    for day in range(150):
        stripe_world.payouts.payout_add(account, [charge_line(1000 + day)], created=start + day * 86400, status="paid")

    found = list(gateway.payouts_list(organization=stripe_organization, created_after=datetime.datetime.fromtimestamp(start + 19 * 86400, tz=UTC)))

    assert len(found) == 130
    assert [fact.created for fact in found] == sorted((fact.created for fact in found), reverse=True)
    assert found[-1].created == datetime.datetime.fromtimestamp(start + 20 * 86400, tz=UTC)
    assert {(fact.bank_name, fact.bank_last4, fact.status, fact.organization_id) for fact in found} == {
        ("STRIPE TEST BANK", "6789", "paid", stripe_organization.pk)
    }
    pages = stripe_world.http.sent("GET", "/v1/payouts")
    assert len(pages) == 2
    assert {(page.account, page.params["created"]["gt"], page.params["expand"][0]) for page in pages} == {
        (account, str(start + 19 * 86400), "data.destination")
    }


def test_payout_get_reads_a_failed_payout_with_its_reason_and_trace(gateway, stripe_world, stripe_organization, account):
    arrival = 1_780_099_200  # 2026-05-30 00:00 UTC
    payout = stripe_world.payouts.payout_add(
        account,
        [charge_line(20000)],
        status="failed",
        failure_code="account_closed",
        arrival_date=arrival,
        trace_id={"status": "supported", "value": "021000021234567"},
        automatic=False,
        method="instant",
        created=1_780_000_000,
    )

    fact = gateway.payout_get(organization=stripe_organization, gateway_payout_id=payout["id"])

    assert fact == PayoutFact(
        organization_id=stripe_organization.pk,
        gateway_payout_id=payout["id"],
        amount_cents=20000 - 610,
        currency="usd",
        status="failed",
        method="instant",
        created=datetime.datetime(2026, 5, 28, 20, 26, 40, tzinfo=UTC),
        arrival_date=datetime.date(2026, 5, 30),
        automatic=False,
        bank_name="STRIPE TEST BANK",
        bank_last4="6789",
        trace_id="021000021234567",
        failure_code="account_closed",
        # Stripe sent no message of its own: ours for the code.
        failure_message="The bank account has been closed.",
        description="STRIPE PAYOUT",
        as_of=fact.as_of,
    )
    assert fact.as_of > 1_780_000_000
    (request,) = stripe_world.http.sent("GET", "/v1/payouts/")
    assert request.account == account and request.params["expand"] == ["destination"]


# -- the balance and the next payout ---------------------------------------------------------------


def test_the_balance_is_read_per_currency(gateway, stripe_world, stripe_organization, account):
    stripe_world.payouts.balance_set(account, available={"usd": 123456, "cad": 0}, pending={"usd": 7890, "cad": 5000})

    fact = gateway.balance(organization=stripe_organization)

    assert fact == BalanceFact(
        organization_id=stripe_organization.pk,
        amounts=(
            BalanceAmount(currency="cad", available_cents=0, pending_cents=5000),
            BalanceAmount(currency="usd", available_cents=123456, pending_cents=7890),
        ),
        as_of=fact.as_of,
    )
    (request,) = stripe_world.http.sent("GET", "/v1/balance")
    assert request.account == account


@pytest.fixture
def clinic_clock(monkeypatch):
    """The clock the next payout is counted from. Nothing else sets the time here (no clock
    library in the project): the payouts module's ``timezone.now`` alone is replaced."""

    def set_to(moment: datetime.datetime) -> None:
        monkeypatch.setattr(stripe_payouts, "timezone", SimpleNamespace(now=lambda: moment))

    return set_to


def test_next_payout_on_a_weekly_schedule_counts_the_pending_funds_in_time(gateway, stripe_world, stripe_organization, account, clinic_clock):
    stripe_world.payouts.balance_set(account, available={"usd": 40000, "eur": 0}, pending={"usd": 2500, "eur": 0})
    stripe_world.payouts.schedule_set(account, interval="weekly", weekly_anchor="friday", delay_days=2)
    # Monday 2026-11-30, 10:00 in New York (the account's time zone).
    clinic_clock(datetime.datetime(2026, 11, 30, 15, 0, tzinfo=UTC))

    found = gateway.next_payouts(organization=stripe_organization)

    # Friday is 4 days away, more than the 2 days funds stay pending: all of it is paid out then.
    assert found == [NextPayout(currency="usd", payout_date=datetime.date(2026, 12, 4), estimated_cents=42500)]
    assert {request.account for request in stripe_world.http.recorded} == {account}
    assert [request.path for request in stripe_world.http.recorded] == ["/v1/account", "/v1/balance"]


def test_next_payout_on_a_daily_schedule_counts_only_what_is_available(gateway, stripe_world, stripe_organization, account, clinic_clock):
    stripe_world.payouts.balance_set(account, available={"usd": 1200}, pending={"usd": 9000})
    stripe_world.payouts.schedule_set(account, interval="daily", delay_days=2)
    # Friday 2026-12-04, 23:30 in New York: Saturday already in UTC, still Friday for the clinic.
    clinic_clock(datetime.datetime(2026, 12, 5, 4, 30, tzinfo=UTC))

    found = gateway.next_payouts(organization=stripe_organization)

    # The next weekday is Monday, 3 days away: pending funds (2 days) are counted too.
    assert found == [NextPayout(currency="usd", payout_date=datetime.date(2026, 12, 7), estimated_cents=10200)]

    # On a Monday the next payout is Tuesday, 1 day away: only the available balance is sure.
    clinic_clock(datetime.datetime(2026, 12, 7, 15, 0, tzinfo=UTC))
    assert gateway.next_payouts(organization=stripe_organization) == [
        NextPayout(currency="usd", payout_date=datetime.date(2026, 12, 8), estimated_cents=1200)
    ]


def test_no_next_payout_on_a_manual_schedule_or_with_payouts_disabled(gateway, stripe_world, stripe_organization, account):
    stripe_world.payouts.balance_set(account, available={"usd": 5000}, pending={"usd": 0})
    stripe_world.payouts.schedule_set(account, interval="manual", delay_days=2)
    assert gateway.next_payouts(organization=stripe_organization) == []

    stripe_world.payouts.schedule_set(account, interval="daily", delay_days=2)
    stripe_world.connect.accounts[account]["payouts_enabled"] = False
    assert gateway.next_payouts(organization=stripe_organization) == []

    stripe_world.connect.accounts[account]["payouts_enabled"] = True
    assert [payout.estimated_cents for payout in gateway.next_payouts(organization=stripe_organization)] == [5000]


@pytest.mark.parametrize(
    "schedule, today, expected",
    [
        ({"interval": "daily"}, datetime.date(2026, 12, 3), datetime.date(2026, 12, 4)),  # Thu → Fri
        ({"interval": "daily"}, datetime.date(2026, 12, 4), datetime.date(2026, 12, 7)),  # Fri → Mon
        ({"interval": "weekly", "weekly_anchor": "monday"}, datetime.date(2026, 11, 30), datetime.date(2026, 12, 7)),
        ({"interval": "weekly", "weekly_payout_days": ["tuesday", "thursday"]}, datetime.date(2026, 12, 1), datetime.date(2026, 12, 3)),
        ({"interval": "monthly", "monthly_anchor": 15}, datetime.date(2026, 12, 1), datetime.date(2026, 12, 15)),
        ({"interval": "monthly", "monthly_anchor": 15}, datetime.date(2026, 12, 15), datetime.date(2027, 1, 15)),
        # The 31st in a 28-day month is its last day, Sunday 2027-02-28: moved to Monday.
        ({"interval": "monthly", "monthly_anchor": 31}, datetime.date(2027, 2, 1), datetime.date(2027, 3, 1)),
        ({"interval": "monthly", "monthly_payout_days": [1, 20]}, datetime.date(2026, 12, 21), datetime.date(2027, 1, 1)),
        ({"interval": "manual"}, datetime.date(2026, 12, 1), None),
    ],
)
def test_the_next_payout_day_of_each_schedule(schedule, today, expected):
    assert next_payout_day(schedule, today) == expected


# -- events ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, status",
    [
        ("payout.created", "pending"),
        ("payout.updated", "in_transit"),
        ("payout.paid", "paid"),
        ("payout.failed", "failed"),
        ("payout.canceled", "canceled"),
        ("payout.reconciliation_completed", "paid"),
    ],
)
def test_a_payout_event_becomes_its_payout_fact(gateway, stripe_world, stripe_organization, account, event_type, status):
    payout = stripe_world.payouts.payout_add(account, [charge_line(30000)], created=1_780_000_000, arrival_date=1_780_185_600)
    changes = {"status": status}
    if status == "failed":
        changes.update(failure_code="insufficient_funds", failure_message="Stripe said: not enough money.")
    if status == "paid":
        changes.update(trace_id={"status": "supported", "value": "TRACE-9934"})
    obj = stripe_world.payouts.payout_update(payout["id"], **changes)
    event = stripe_event(event_type, obj, account=account, created=1_780_050_000)

    facts = gateway.facts_from_payload(payload=event)

    assert facts == [
        PayoutFact(
            organization_id=stripe_organization.pk,
            gateway_payout_id=payout["id"],
            amount_cents=30000 - 900,
            currency="usd",
            status=status,
            method="standard",
            created=datetime.datetime.fromtimestamp(1_780_000_000, tz=UTC),
            arrival_date=datetime.date(2026, 5, 31),
            automatic=True,
            bank_name="STRIPE TEST BANK",
            bank_last4="6789",
            trace_id="TRACE-9934" if status == "paid" else "",
            failure_code="insufficient_funds" if status == "failed" else "",
            failure_message="Stripe said: not enough money." if status == "failed" else "",
            description="STRIPE PAYOUT",
            as_of=1_780_050_000,
        )
    ]
    # The event names the bank account by id: it was read from the payout, on the clinic's account.
    (read,) = stripe_world.http.sent("GET", f"/v1/payouts/{payout['id']}")
    assert read.account == account and read.params["expand"] == ["destination"]


def test_a_payout_event_with_its_bank_account_expanded_asks_stripe_nothing(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add(account, [charge_line(30000)])
    payout["destination"] = {**stripe_world.payouts.bank_account(account), "bank_name": "FIRST CLINIC BANK", "last4": "1234"}

    (fact,) = gateway.facts_from_payload(payload=stripe_event("payout.paid", payout, account=account))

    assert (fact.bank_name, fact.bank_last4) == ("FIRST CLINIC BANK", "1234")
    assert stripe_world.http.recorded == []


def test_a_payout_event_whose_bank_account_stripe_will_not_show_is_kept_without_it(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add(account, [charge_line(30000)])
    stripe_world.http.answer_once(
        "GET", "/v1/payouts/", status=404, body={"error": {"type": "invalid_request_error", "message": "No such payout"}}
    )

    (fact,) = gateway.facts_from_payload(payload=stripe_event("payout.paid", payout, account=account))

    assert (fact.gateway_payout_id, fact.bank_name, fact.bank_last4, fact.status) == (payout["id"], "", "", "in_transit")


def test_a_payout_event_is_tried_again_when_stripe_is_unreachable_for_its_bank_account(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add(account, [charge_line(30000)])
    stripe_world.http.unreachable("GET", "/v1/payouts/")

    with pytest.raises(GatewayUnavailable):
        gateway.facts_from_payload(payload=stripe_event("payout.paid", payout, account=account))


def test_balance_available_becomes_the_balance_fact(gateway, stripe_world, stripe_organization, account):
    balance = stripe_world.payouts.balance_set(account, available={"usd": 98765}, pending={"usd": 4321})

    facts = gateway.facts_from_payload(payload=stripe_event("balance.available", balance, account=account, created=1_780_000_123))

    assert facts == [
        BalanceFact(
            organization_id=stripe_organization.pk,
            amounts=(BalanceAmount(currency="usd", available_cents=98765, pending_cents=4321),),
            as_of=1_780_000_123,
        )
    ]
    assert stripe_world.http.recorded == []


def test_payout_events_from_an_account_that_is_no_clinic_of_ours_are_skipped(gateway, stripe_world, stripe_organization):
    payout = stripe_world.payouts.payout_add("acct_notours0000000000", [charge_line(1000)])
    balance = stripe_world.payouts.balance_set("acct_notours0000000000", available={"usd": 1}, pending={})

    assert gateway.facts_from_payload(payload=stripe_event("payout.paid", payout, account="acct_notours0000000000")) == []
    assert gateway.facts_from_payload(payload=stripe_event("balance.available", balance, account="acct_notours0000000000")) == []
    assert stripe_world.http.recorded == []


# -- the connected account, and no patient's data -------------------------------------------------


def test_every_payout_call_is_on_the_clinics_account_and_carries_no_patient_data(
    gateway, stripe_world, stripe_organization, account, clinic_clock
):
    patient = stripe_test_patient(stripe_organization, "Leontyne")
    transaction = stripe_checkout_paid(stripe_world, stripe_organization, amount_cents=9000, patient=patient)
    stripe_world.http.recorded.clear()
    payout = stripe_world.payouts.payout_add(account, every_kind_lines(payment_intents=[transaction.gateway_charge_id]))
    stripe_world.payouts.balance_set(account, available={"usd": 100}, pending={"usd": 100})
    clinic_clock(datetime.datetime(2026, 12, 1, 15, 0, tzinfo=UTC))

    _lines(gateway, stripe_organization, payout)
    list(gateway.payouts_list(organization=stripe_organization, created_after=datetime.datetime(2026, 1, 1, tzinfo=UTC)))
    gateway.payout_get(organization=stripe_organization, gateway_payout_id=payout["id"])
    gateway.balance(organization=stripe_organization)
    gateway.next_payouts(organization=stripe_organization)
    gateway.facts_from_payload(payload=stripe_event("payout.paid", payout, account=account))

    recorded = stripe_world.http.recorded
    assert len(recorded) == 7
    assert {request.method for request in recorded} == {"GET"}
    assert {request.account for request in recorded} == {account}
    assert [phi_found_in(request.values()) for request in recorded] == [[]] * 7


def test_the_phi_check_would_see_a_patients_name_in_a_payout_call(stripe_world, stripe_organization):
    """The check above can fail: a patient's name in a payout request is found."""
    patient = stripe_test_patient(stripe_organization, "Evangelina")
    from ..stripe_support import RecordedRequest

    request = RecordedRequest(
        method="GET",
        url=f"{stripe_world.server.url}/v1/payouts?description={patient.last_name}",
        headers={"Stripe-Account": stripe_organization.stripe_account_id},
        body="",
    )

    assert phi_found_in(request.values()) == ["last name 'Quintanilla-Okafor'"]


def test_a_payout_read_without_the_account_header_is_refused_by_the_fake(stripe_world, stripe_organization, account):
    """The fake answers only on a connected account, so a call that lost its header fails a test."""
    import stripe as stripe_library

    from transactions.gateways.stripe.client import stripe_client

    stripe_world.payouts.payout_add(account, [charge_line(1000)])

    with pytest.raises(stripe_library.InvalidRequestError, match="no Stripe-Account header"):
        stripe_client().v1.payouts.list({"limit": 10})


# -- Stripe saying no, or not answering ------------------------------------------------------------


CALLS = {
    "payout_lines": ("/v1/balance_transactions", lambda gateway, org, payout: list(gateway.payout_lines(organization=org, gateway_payout_id=payout))),
    "payouts_list": ("/v1/payouts", lambda gateway, org, payout: list(gateway.payouts_list(organization=org, created_after=datetime.datetime(2026, 1, 1, tzinfo=UTC)))),
    "payout_get": ("/v1/payouts/", lambda gateway, org, payout: gateway.payout_get(organization=org, gateway_payout_id=payout)),
    "balance": ("/v1/balance", lambda gateway, org, payout: gateway.balance(organization=org)),
    "next_payouts": ("/v1/account", lambda gateway, org, payout: gateway.next_payouts(organization=org)),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_stripe_refusing_is_a_gateway_error(gateway, stripe_world, stripe_organization, account, call):
    path, act = CALLS[call]
    payout = stripe_world.payouts.payout_add(account, [charge_line(1000)])
    stripe_world.http.answer_once(
        "GET", path, status=400, body={"error": {"type": "invalid_request_error", "message": "This account cannot do that."}}
    )

    with pytest.raises(GatewayError, match="This account cannot do that.") as raised:
        act(gateway, stripe_organization, payout["id"])
    assert not isinstance(raised.value, GatewayUnavailable)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_stripe_failing_or_unreachable_is_gateway_unavailable(gateway, stripe_world, stripe_organization, account, call):
    path, act = CALLS[call]
    payout = stripe_world.payouts.payout_add(account, [charge_line(1000)])
    stripe_world.http.answer_once("GET", path, status=500, body={"error": {"type": "api_error", "message": "Stripe broke."}})

    with pytest.raises(GatewayUnavailable, match="Stripe broke"):
        act(gateway, stripe_organization, payout["id"])

    stripe_world.http.unreachable("GET", path)
    with pytest.raises(GatewayUnavailable, match="Stripe did not answer"):
        act(gateway, stripe_organization, payout["id"])


def test_a_page_after_the_first_failing_is_gateway_unavailable_too(gateway, stripe_world, stripe_organization, account):
    payout = stripe_world.payouts.payout_add(account, [charge_line(1000 + index) for index in range(150)])
    read = gateway.payout_lines(organization=stripe_organization, gateway_payout_id=payout["id"])
    first = [next(read) for _ in range(99)]  # the first page: 100 less the payout's own withdrawal
    stripe_world.http.unreachable("GET", "/v1/balance_transactions")

    with pytest.raises(GatewayUnavailable):
        list(read)
    assert len(first) == 99


def test_a_clinic_without_a_connected_account_is_told_so(gateway, stripe_world, organization):
    organization.payment_gateway = "stripe"
    organization.save()

    with pytest.raises(GatewayError, match="has not connected a Stripe account"):
        gateway.balance(organization=organization)
    assert stripe_world.http.recorded == []


def test_a_stripe_clinics_payouts_are_read_through_the_stripe_gateway(stripe_world, stripe_organization):
    from transactions.gateways import payouts_for

    found = payouts_for(stripe_organization)

    assert isinstance(found, StripeGateway)
    assert all(callable(getattr(found, name, None)) for name in ("payout_lines", "payouts_list", "payout_get", "balance", "next_payouts"))
