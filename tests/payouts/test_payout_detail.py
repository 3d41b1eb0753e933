"""A payout's page: the bank, trace id, arrival and failure; every line with its transaction;
totals by kind and in all from the database, to the cent; the difference flagged in words; lines
not fetched yet; keyset paging of the lines; another organization's payout is not found."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from lumapay.models import PhiAccess
from payouts.enums import PayoutLineKind, PayoutStatus, Reconciliation
from tests.factories import LocationFactory, PatientFactory
from tests.transactions.dashboard_support import ledger_transaction

from .factories import PayoutFactory, PayoutLineFactory

pytestmark = pytest.mark.django_db


def detail(client, payout, **params):
    response = client.get(reverse("payouts:detail", args=[payout.pk]), params)
    assert response.status_code == 200
    return response


@pytest.fixture
def signed_in(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def carried(organization):
    """A paid payout of $1,000.27 whose seven lines add up to it exactly."""
    location = LocationFactory(organization=organization)
    patient = PatientFactory(organization=organization, first_name="Rosalind", last_name="Quimby")
    start = timezone.now() - datetime.timedelta(days=3)
    transaction = ledger_transaction(organization=organization, location=location, patient=patient, created_at=start)
    payout = PayoutFactory(organization=organization, amount_cents=100_027, status=PayoutStatus.PAID,
                           bank_last4="4321", trace_id="TRACE-778899", reconciliation=Reconciliation.MATCHED)
    lines = [
        (PayoutLineKind.CHARGE, 80_000, 2_350, transaction),
        (PayoutLineKind.CHARGE, 35_000, 1_045, None),
        (PayoutLineKind.REFUND, -10_000, 0, transaction),
        (PayoutLineKind.DISPUTE, -1_500, 1_500, None),
        (PayoutLineKind.FEE, -100, 0, None),
        (PayoutLineKind.ADJUSTMENT, 522, 0, None),
        (PayoutLineKind.DISPUTE_REVERSAL, 1_000, 0, None),
    ]
    for n, (kind, amount, fee, linked) in enumerate(lines):
        PayoutLineFactory(payout=payout, kind=kind, amount_cents=amount, fee_cents=fee, transaction=linked,
                          created_at=start + datetime.timedelta(minutes=n))
    return payout, transaction, patient


def test_the_page_shows_the_bank_trace_and_arrival(signed_in, carried):
    payout, _, _ = carried

    html = detail(signed_in, payout).content.decode()

    assert "ending 4321" in html and "TRACE-778899" in html
    assert payout.arrival_date.strftime("%b") in html
    assert "Failure reason" not in html


def test_the_totals_by_kind_and_in_all_add_up_to_the_payout_to_the_cent(signed_in, carried):
    payout, _, _ = carried

    response = detail(signed_in, payout)

    totals = response.context["totals"]
    assert [(t.kind, t.count, t.amount_cents, t.fee_cents, t.net_cents) for t in totals.by_kind] == [
        ("charge", 2, 115_000, 3_395, 111_605),
        ("refund", 1, -10_000, 0, -10_000),
        ("dispute", 1, -1_500, 1_500, -3_000),
        ("dispute_reversal", 1, 1_000, 0, 1_000),
        ("fee", 1, -100, 0, -100),
        ("adjustment", 1, 522, 0, 522),
    ]
    assert (totals.count, totals.gross_cents, totals.fee_cents, totals.net_cents) == (7, 104_922, 4_895, 100_027)
    assert totals.net_cents == payout.amount_cents
    assert response.context["reconciliation"]["state"] == "matched"
    html = response.content.decode()
    assert "The 7 lines add up to the payout to the cent." in html
    assert "$1,049.22" in html and "−$48.95" in html and "$1,000.27" in html


def test_every_line_links_its_transaction_and_names_no_patient(signed_in, carried):
    payout, transaction, patient = carried

    response = detail(signed_in, payout)

    html = response.content.decode()
    link = reverse("transactions:transaction_detail", args=[transaction.pk])
    assert html.count(f'href="{link}"') == 2
    assert len(response.context["lines"].lines) == 7
    assert "Rosalind" not in html and "Quimby" not in html
    # No patient shown: nothing to record in the PHI access log.
    assert not PhiAccess.objects.exists()


def test_a_payout_that_does_not_reconcile_is_flagged_with_the_difference_in_words(signed_in, organization):
    payout = PayoutFactory(organization=organization, amount_cents=50_000, reconciliation=Reconciliation.DIFFERENCE)
    PayoutLineFactory(payout=payout, amount_cents=30_000, fee_cents=0)
    PayoutLineFactory(payout=payout, amount_cents=19_990, fee_cents=1_000)

    response = detail(signed_in, payout)

    assert response.context["reconciliation"]["difference_cents"] == 1_010
    html = response.content.decode()
    assert ("This payout does not reconcile. The lines add up to $489.90, $10.10 less than the payout of $500.00: "
            "$10.10 of the payout is not explained by its lines.") in html
    assert 'role="alert"' in html


def test_lines_adding_up_to_more_than_the_payout_say_so(signed_in, organization):
    payout = PayoutFactory(organization=organization, amount_cents=10_000)
    PayoutLineFactory(payout=payout, amount_cents=10_001, fee_cents=0)

    html = detail(signed_in, payout).content.decode()

    assert "The lines add up to $100.01, $0.01 more than the payout of $100.00" in html


def test_lines_not_fetched_yet_say_so(signed_in, organization):
    payout = PayoutFactory(organization=organization, reconciliation=Reconciliation.WAITING)

    response = detail(signed_in, payout)

    assert response.context["reconciliation"]["state"] == "waiting"
    html = response.content.decode()
    assert "have not been fetched from the payment processor yet" in html
    assert "does not reconcile" not in html


def test_a_failed_payout_shows_why(signed_in, organization):
    payout = PayoutFactory(organization=organization, status=PayoutStatus.FAILED, failure_code="account_closed",
                           failure_message="The bank account has been closed.")

    html = detail(signed_in, payout).content.decode()

    assert "Failure reason" in html and "The bank account has been closed." in html


def test_ten_thousand_lines_are_paged_by_keyset_and_totalled_by_the_database(signed_in, organization):
    from payouts.models import PayoutLine

    payout = PayoutFactory(organization=organization, amount_cents=0)
    start = timezone.now()
    PayoutLine.objects.bulk_create(
        PayoutLine(organization=organization, payout=payout, gateway_line_id=f"txn_{n}", kind=PayoutLineKind.CHARGE,
                   amount_cents=100 + n % 7, fee_cents=3, net_cents=97 + n % 7, currency="usd",
                   # Pairs at the same moment: the cursor settles ties by id.
                   created_at=start + datetime.timedelta(seconds=n // 2))
        for n in range(10_000)
    )
    expected_net = sum(97 + n % 7 for n in range(10_000))
    payout.amount_cents = expected_net
    payout.save()

    seen, params, pages = [], {}, 0
    while True:
        response = detail(signed_in, payout, **params)
        pages += 1
        assert response.context["totals"].net_cents == expected_net
        lines = response.context["lines"]
        seen += [line.gateway_line_id for line in lines.lines]
        if not lines.next_cursor:
            break
        params = {"after": lines.next_cursor}

    assert pages == 100
    assert seen == [f"txn_{n}" for n in range(10_000)]
    assert response.context["reconciliation"]["state"] == "matched"


def test_another_organizations_payout_is_not_found(signed_in, other_organization):
    theirs = PayoutFactory(organization=other_organization)

    assert signed_in.get(reverse("payouts:detail", args=[theirs.pk])).status_code == 404
    assert signed_in.get(reverse("payouts:detail", args=[987654321])).status_code == 404


def test_a_refunded_fee_adds_back(signed_in, organization):
    payout = PayoutFactory(organization=organization, amount_cents=-9_870)
    PayoutLineFactory(payout=payout, kind=PayoutLineKind.REFUND, amount_cents=-10_000, fee_cents=-130)

    html = detail(signed_in, payout).content.decode()

    # The refund took $100.00 off and gave back its $1.30 fee: −$98.70, and the fee column says +$1.30.
    assert html.count("$1.30") >= 2 and "−$1.30" not in html
    assert "Its one line adds up to the payout to the cent." in html
