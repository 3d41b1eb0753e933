"""The dashboard's filters, alone and combined, its totals and chart, htmx and the URL.

The organization is in Los Angeles while the server's TIME_ZONE is New York, so a date filter that
used the server's timezone would put the rows near midnight on the wrong day.
"""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from org_profile.enums import PaymentGateway, Role
from tests.factories import LocationFactory, MembershipFactory, PatientFactory
from transactions.enums import PaymentRequestKind, TransactionStatus
from transactions import filters
from transactions.filters import TransactionFilter
from transactions.models import Transaction
from transactions.selectors.dashboard import dashboard_summary
from transactions.selectors.ledger import transactions_for

from .dashboard_support import ledger_transaction, local

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("transactions:dashboard")
LA = "America/Los_Angeles"
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "transaction-results"}


@pytest.fixture
def data(organization, location, other_location):
    """Six transactions of a Los Angeles clinic, named t1 (oldest) to t6, and one elsewhere."""
    organization.timezone = LA
    organization.save(update_fields=["timezone"])
    maria = PatientFactory(
        organization=organization, first_name="Maria", last_name="Lopez", external_ehr_id="MRN-1001",
        email="maria.lopez@mail.example",
    )
    james = PatientFactory(
        organization=organization, first_name="James", last_name="Obrien", external_ehr_id="EHR_77",
        mobile_phone="+13125550101",
    )
    ann = PatientFactory(organization=organization, first_name="Ann", last_name="Lee", external_ehr_id="MRN-2002")
    copay, balance, other = PaymentRequestKind.COPAY, PaymentRequestKind.BALANCE, PaymentRequestKind.OTHER

    def make(**kwargs):
        return ledger_transaction(organization=organization, **kwargs)

    rows = {
        # Feb 28 23:30 in Los Angeles is Mar 1 02:30 in New York.
        "t1": make(location=location, patient=maria, created_at=local(LA, 2026, 2, 28, 23, 30), amount_cents=1500,
                   kind=copay, billing_item="Office visit copay", vendor=PaymentGateway.SANDBOX, card_brand="visa"),
        "t2": make(location=location, patient=james, created_at=local(LA, 2026, 3, 1, 0, 30), amount_cents=5000,
                   kind=copay, billing_item="Specialist visit copay", vendor=PaymentGateway.STRIPE,
                   card_brand="mastercard", card_last4="4444"),
        "t3": make(location=other_location, patient=ann, created_at=local(LA, 2026, 3, 15, 12, 0), amount_cents=5001,
                   kind=balance, billing_item="Statement balance", vendor=PaymentGateway.SANDBOX, card_brand="amex",
                   card_last4="0005", refunded_cents=2001),
        "t4": make(location=location, patient=maria, created_at=local(LA, 2026, 3, 31, 23, 0), amount_cents=12000,
                   kind=balance, billing_item="Statement balance", vendor=PaymentGateway.SANDBOX, card_brand="visa",
                   card_last4="0002", outcome="declined"),
        "t5": make(location=other_location, patient=james, created_at=local(LA, 2026, 4, 1, 0, 30), amount_cents=7500,
                   kind=other, billing_item="Flu vaccination", vendor=PaymentGateway.STRIPE, outcome="pending"),
        "t6": make(location=location, patient=ann, created_at=local(LA, 2026, 3, 20, 9, 0), amount_cents=3000,
                   kind=copay, billing_item="Office visit copay", vendor=PaymentGateway.SANDBOX, card_brand="discover",
                   card_last4="1117", paid_at=local(LA, 2026, 3, 22, 10, 0), refund_fails=True),
    }
    elsewhere = PatientFactory(organization=LocationFactory().organization, first_name="Maria", last_name="Lopez")
    ledger_transaction(
        organization=elsewhere.organization, location=LocationFactory(organization=elsewhere.organization),
        patient=elsewhere, created_at=local(LA, 2026, 3, 10, 12, 0), billing_item="Another clinic's item",
    )
    return rows


def _names(response, data):
    by_pk = {transaction.pk: name for name, transaction in data.items()}
    return [by_pk.get(transaction.pk, f"other:{transaction.pk}") for transaction in response.context["page"].object_list]


def test_the_ledger_set_the_statuses_the_filters_rely_on(data):
    statuses = {name: (t.status, t.charged_cents, t.refunded_cents, t.last_error) for name, t in data.items()}

    assert statuses == {
        "t1": (TransactionStatus.SUCCEEDED, 1500, 0, ""),
        "t2": (TransactionStatus.SUCCEEDED, 5000, 0, ""),
        "t3": (TransactionStatus.PARTIALLY_REFUNDED, 5001, 2001, ""),
        "t4": (TransactionStatus.FAILED, 0, 0, "Your card was declined."),
        "t5": (TransactionStatus.PENDING, 0, 0, ""),
        "t6": (TransactionStatus.SUCCEEDED, 3000, 0, "The card issuer declined the refund."),
    }


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, ["t5", "t4", "t6", "t3", "t2", "t1"]),
        # Created, in the organization's dates.
        ({"created_from": "2026-03-01", "created_to": "2026-03-31"}, ["t4", "t6", "t3", "t2"]),
        ({"created_from": "2026-03-20"}, ["t5", "t4", "t6"]),
        ({"created_to": "2026-02-28"}, ["t1"]),
        ({"created_from": "2026-04-01", "created_to": "2026-04-01"}, ["t5"]),
        # Date paid, in the organization's dates (t6 was paid two days after it was created).
        ({"paid_from": "2026-03-22", "paid_to": "2026-03-22"}, ["t6"]),
        ({"paid_to": "2026-02-28"}, ["t1"]),
        ({"paid_from": "2026-03-20"}, ["t6"]),
        # Amounts typed in dollars, compared in cents, both ends included.
        ({"amount_min": "50"}, ["t5", "t4", "t3", "t2"]),
        ({"amount_min": "50.01"}, ["t5", "t4", "t3"]),
        ({"amount_max": "$50.00"}, ["t6", "t2", "t1"]),
        ({"amount_min": "30", "amount_max": "75"}, ["t5", "t6", "t3", "t2"]),
        ({"amount_min": "$1,200"}, []),
        # Several billing items, statuses and kinds.
        ({"billing_item": ["Statement balance", "Flu vaccination"]}, ["t5", "t4", "t3"]),
        ({"billing_item": ["Office visit copay"]}, ["t6", "t1"]),
        ({"status": ["succeeded", "partially_refunded"]}, ["t6", "t3", "t2", "t1"]),
        ({"status": ["pending"]}, ["t5"]),
        ({"kind": ["balance"]}, ["t4", "t3"]),
        ({"kind": ["copay", "other"]}, ["t5", "t6", "t2", "t1"]),
        # Vendor and card brand.
        ({"vendor": "stripe"}, ["t5", "t2"]),
        ({"vendor": "sandbox"}, ["t4", "t6", "t3", "t1"]),
        ({"card_brand": "visa"}, ["t4", "t1"]),
        ({"card_brand": "amex"}, ["t3"]),
        # Errors: a declined card, a refund that failed.
        ({"has_errors": "true"}, ["t4", "t6"]),
        ({"has_errors": "false"}, ["t5", "t3", "t2", "t1"]),
        # Patient: name or EHR id, any case, every word.
        ({"q": "lop"}, ["t4", "t1"]),
        ({"q": "MARIA lop"}, ["t4", "t1"]),
        ({"q": "maria lee"}, []),
        ({"q": "mrn-2002"}, ["t6", "t3"]),
        ({"q": "EHR_77"}, ["t5", "t2"]),
        # … without accents, as "Last, First", by e-mail or by phone: the Hub's search.
        ({"q": "lópez"}, ["t4", "t1"]),
        ({"q": "Lopez, Maria"}, ["t4", "t1"]),
        ({"q": "Lee, Maria"}, []),
        ({"q": "maria.lopez@mail"}, ["t4", "t1"]),
        ({"q": "(312) 555-0101"}, ["t5", "t2"]),
        ({"q": "%"}, []),
        ({"q": "N_2"}, []),
        # Combined.
        ({"created_from": "2026-03-01", "created_to": "2026-03-31", "amount_min": "50", "status": ["failed"]}, ["t4"]),
        ({"created_from": "2026-03-01", "created_to": "2026-03-31", "status": ["succeeded", "partially_refunded"],
          "kind": ["copay"]}, ["t6", "t2"]),
        ({"created_from": "2026-02-01", "created_to": "2026-04-30", "paid_from": "2026-03-01", "amount_max": "60",
          "billing_item": ["Specialist visit copay", "Statement balance", "Office visit copay"],
          "status": ["succeeded", "partially_refunded"], "vendor": "sandbox", "has_errors": "false"}, ["t3"]),
        ({"q": "ann", "has_errors": "true", "card_brand": "discover", "kind": ["copay"],
          "billing_item": ["Office visit copay"]}, ["t6"]),
        ({"q": "maria", "kind": ["copay"], "created_from": "2026-03-01"}, []),
    ],
)
def test_each_filter_alone_and_combined(client_for, manager, data, params, expected):
    response = client_for(manager).get(DASHBOARD, params)

    assert response.status_code == 200
    assert _names(response, data) == expected
    assert response.context["summary"].count == len(expected)


def test_the_patient_filter_finds_garcia_without_the_accent_and_as_the_hub_shows_him(
    client_for, manager, organization, location
):
    # given a payment of Jorge García and one of María García
    jorge = PatientFactory(organization=organization, first_name="Jorge", last_name="García")
    maria = PatientFactory(organization=organization, first_name="María", last_name="García")
    paid = {
        patient.pk: ledger_transaction(
            organization=organization, location=location, patient=patient, created_at=local(LA, 2026, 3, day, 9, 0)
        ).pk
        for day, patient in ((1, jorge), (2, maria))
    }
    client = client_for(manager)

    # when a manager filters the dashboard on each way of typing the name
    # then the right payments are listed and counted
    for query, expected in (
        ("garcia", [paid[maria.pk], paid[jorge.pk]]),
        ("Garcia, Jorge", [paid[jorge.pk]]),
        ("jorge garcía", [paid[jorge.pk]]),
    ):
        response = client.get(DASHBOARD, {"q": query})
        assert [t.pk for t in response.context["page"].object_list] == expected, query
        assert response.context["summary"].count == len(expected)


def test_a_search_finding_more_patients_than_are_listed_filters_the_same_through_a_subquery(
    client_for, manager, organization, location, monkeypatch
):
    # given three Garcías with a payment each, and a Smith
    garcias = [
        PatientFactory(organization=organization, first_name=first, last_name="García")
        for first in ("Jorge", "María", "Lucía")
    ]
    smith = PatientFactory(organization=organization, first_name="Ann", last_name="Smith")
    paid = [
        ledger_transaction(
            organization=organization, location=location, patient=patient, created_at=local(LA, 2026, 3, day, 9, 0)
        ).pk
        for day, patient in enumerate([*garcias, smith], start=1)
    ]
    client = client_for(manager)
    listed = client.get(DASHBOARD, {"q": "garcia"})

    # when the search finds more patients than the filter lists by id
    monkeypatch.setattr(filters, "PATIENT_IDS_LISTED_MAX", 2)
    through_a_subquery = client.get(DASHBOARD, {"q": "garcia"})

    # then both ways list and count the same three payments
    expected = [paid[2], paid[1], paid[0]]
    for response in (listed, through_a_subquery):
        assert [t.pk for t in response.context["page"].object_list] == expected
        assert response.context["summary"].count == 3


def test_location_filter_and_its_choices(client_for, manager, data, location, other_location):
    client = client_for(manager)

    northside = client.get(DASHBOARD, {"location": [other_location.pk]})
    both = client.get(DASHBOARD, {"location": [location.pk, other_location.pk]})

    assert _names(northside, data) == ["t5", "t3"]
    assert _names(both, data) == ["t5", "t4", "t6", "t3", "t2", "t1"]
    choices = [choice[1] for choice in northside.context["filterset"].form.fields["location"].choices]
    assert choices == ["Downtown Clinic", "Northside Clinic"]


def test_billing_item_choices_are_the_organizations_own(client_for, manager, data):
    form = client_for(manager).get(DASHBOARD).context["filterset"].form

    assert [value for value, _ in form.fields["billing_item"].choices] == [
        "Flu vaccination", "Office visit copay", "Specialist visit copay", "Statement balance",
    ]


def test_another_organizations_billing_item_or_location_is_refused(client_for, manager, data):
    foreign_location = LocationFactory()

    response = client_for(manager).get(
        DASHBOARD, {"billing_item": ["Another clinic's item"], "location": [foreign_location.pk]}
    )

    errors = response.context["filterset"].form.errors
    assert set(errors) == {"billing_item", "location"}
    assert _names(response, data) == ["t5", "t4", "t6", "t3", "t2", "t1"]


def test_has_errors_means_a_problem_no_later_success_resolved(client_for, manager, organization, location):
    from lumapay.models import ActorType
    from transactions.enums import TransactionEventKind as Kind
    from transactions.services.ledger import transaction_event_append

    # given a failure with no message, a declined card then a payment, a refund that failed, a
    # refund that failed and was then made again for the same amount, and a clean payment
    patient = PatientFactory(organization=organization)

    def make(day, **kwargs):
        return ledger_transaction(
            organization=organization, location=location, patient=patient, created_at=local(LA, 2026, 3, day, 9, 0),
            **kwargs,
        )

    silent_failure = make(2, outcome="pending")
    transaction_event_append(
        transaction=silent_failure, kind=Kind.CHARGE_FAILED, amount_cents=0, idempotency_key="charge:0",
        actor_type=ActorType.GATEWAY, message="",
    )
    paid_after_decline = make(3, declined_first=True)
    refund_failed = make(4, refund_fails=True)
    refunded_again = make(5, refund_fails=True)
    transaction_event_append(
        transaction=refunded_again, kind=Kind.REFUND_SUCCEEDED, amount_cents=refunded_again.amount_cents,
        idempotency_key="refund:3",
    )
    clean = make(6)
    for transaction in (silent_failure, paid_after_decline, refunded_again):
        transaction.refresh_from_db()

    # when a manager filters on errors
    client = client_for(manager)
    with_errors = client.get(DASHBOARD, {"has_errors": "true"})
    without = client.get(DASHBOARD, {"has_errors": "false"})

    # then only the unresolved ones count, as the cached flag says
    assert [t.pk for t in with_errors.context["page"].object_list] == [refund_failed.pk, silent_failure.pk]
    assert with_errors.context["summary"].count == 2
    assert [t.pk for t in without.context["page"].object_list] == [
        clean.pk, refunded_again.pk, paid_after_decline.pk
    ]
    assert [(t.has_unresolved_problems, t.last_error) for t in (silent_failure, paid_after_decline, refunded_again)] == [
        (True, ""), (False, ""), (False, ""),
    ]


def test_staff_see_only_their_locations_whatever_the_filters(client_for, staff_user, data, other_location):
    client = client_for(staff_user)

    everything = client.get(DASHBOARD)
    other_place = client.get(DASHBOARD, {"location": [other_location.pk]})
    pending = client.get(DASHBOARD, {"status": ["pending"]})

    assert _names(everything, data) == ["t4", "t6", "t2", "t1"]
    assert everything.context["summary"].count == 4
    assert "location" in other_place.context["filterset"].form.errors
    assert _names(other_place, data) == ["t4", "t6", "t2", "t1"]
    assert _names(pending, data) == []
    assert [choice[1] for choice in everything.context["filterset"].form.fields["location"].choices] == ["Downtown Clinic"]


def test_invalid_values_are_shown_and_left_out(client_for, manager, data):
    response = client_for(manager).get(
        DASHBOARD,
        {"amount_min": "abc", "created_from": "2026-03-31", "created_to": "2026-03-01", "kind": ["balance"]},
    )
    body = response.content.decode()

    errors = response.context["filterset"].form.errors
    assert set(errors) == {"amount_min", "created_to"}
    assert "“abc” is not an amount." in errors["amount_min"][0]
    assert errors["created_to"] == ["The end date is before the start date."]
    assert "The end date is before the start date." in body
    # The valid filters still apply: kind, and the start date alone.
    assert _names(response, data) == ["t4"]
    partial = client_for(manager).get(DASHBOARD, {"amount_min": "abc", "kind": ["balance"]}, **HTMX).content.decode()
    assert "These filters were left out:" in partial
    assert "<li>Amount from ($): “abc” is not an amount." in partial


def test_totals_for_the_filtered_set(client_for, manager, data):
    response = client_for(manager).get(DASHBOARD, {"created_from": "2026-03-01", "created_to": "2026-03-31"})
    summary = response.context["summary"]
    body = response.content.decode()

    assert (summary.count, summary.collected_cents, summary.refunded_cents, summary.net_cents) == (4, 13001, 2001, 11000)
    assert re.search(r'Transactions</span> <span class="total-value">4</span>', body)
    assert re.search(r'Collected</span> <span class="total-value">\$130.01</span>', body)
    assert re.search(r'Refunded</span> <span class="total-value">\$20.01</span>', body)
    assert re.search(r'Net</span> <span class="total-value">\$110.00</span>', body)


def test_the_chart_has_a_bar_per_local_day_of_the_range(client_for, manager, data):
    response = client_for(manager).get(DASHBOARD, {"created_from": "2026-03-01", "created_to": "2026-03-31"})
    chart = response.context["summary"].chart
    body = response.content.decode()

    assert chart.unit == "day"
    assert (chart.first, chart.last) == (datetime.date(2026, 3, 1), datetime.date(2026, 3, 31))
    assert len(chart.bars) == 31
    collected = {bar.start: (bar.collected_cents, bar.payments) for bar in chart.bars if bar.collected_cents}
    # t6 was created on Mar 20 and paid on Mar 22: collections count on the day paid.
    assert collected == {
        datetime.date(2026, 3, 1): (5000, 1),
        datetime.date(2026, 3, 15): (5001, 1),
        datetime.date(2026, 3, 22): (3000, 1),
    }
    assert chart.max_cents == 5001
    tallest = next(bar for bar in chart.bars if bar.start == datetime.date(2026, 3, 15))
    assert (tallest.height, tallest.y) == (156, 4)
    assert body.count('<a class="chart-bar') == 3
    assert 'aria-label="Mar 15, 2026: $50.01, 1 payment"' in body
    assert "Collections per day, Mar 1, 2026 – Mar 31, 2026" in body
    assert "Highest: $50.01 on Mar 15, 2026." in body


def test_unfiltered_chart_spans_the_days_with_collections(client_for, manager, data):
    chart = client_for(manager).get(DASHBOARD).context["summary"].chart

    # t1 was paid at 23:32 on Feb 28 in Los Angeles (Mar 1 in UTC); t6 on Mar 22.
    assert (chart.first, chart.last, chart.unit, len(chart.bars)) == (
        datetime.date(2026, 2, 28), datetime.date(2026, 3, 22), "day", 23,
    )
    assert chart.bars[0].collected_cents == 1500


def test_long_ranges_are_charted_per_week_then_per_month(manager, organization, data):
    membership = organization.memberships.get(user=manager)
    transactions = transactions_for(membership=membership)

    weekly = dashboard_summary(
        transactions, organization=organization, chart_from=datetime.date(2026, 1, 1),
        chart_to=datetime.date(2026, 6, 30), today=datetime.date(2026, 11, 1),
    ).chart
    monthly = dashboard_summary(
        transactions, organization=organization, chart_from=datetime.date(2024, 1, 1),
        chart_to=datetime.date(2026, 6, 30), today=datetime.date(2026, 11, 1),
    ).chart

    assert weekly.unit == "week"
    assert (weekly.bars[0].start, weekly.bars[0].end) == (datetime.date(2026, 1, 1), datetime.date(2026, 1, 4))
    week_of_mar_15 = next(bar for bar in weekly.bars if bar.start <= datetime.date(2026, 3, 15) <= bar.end)
    assert (week_of_mar_15.start, week_of_mar_15.end, week_of_mar_15.collected_cents) == (
        datetime.date(2026, 3, 9), datetime.date(2026, 3, 15), 5001,
    )
    assert sum(bar.collected_cents for bar in weekly.bars) == 14501
    assert monthly.unit == "month"
    assert len(monthly.bars) == 30
    assert [(bar.start, bar.collected_cents) for bar in monthly.bars if bar.collected_cents] == [
        (datetime.date(2026, 2, 1), 1500), (datetime.date(2026, 3, 1), 13001),
    ]


def test_the_chart_never_runs_past_today(manager, organization, data):
    membership = organization.memberships.get(user=manager)

    chart = dashboard_summary(
        transactions_for(membership=membership), organization=organization,
        chart_from=datetime.date(2026, 3, 1), chart_to=datetime.date(2026, 12, 31), today=datetime.date(2026, 3, 10),
    ).chart

    # Widened back to the first day with collections (Feb 28), and cut at today.
    assert (chart.first, chart.last, len(chart.bars)) == (datetime.date(2026, 2, 28), datetime.date(2026, 3, 10), 11)
    assert sum(bar.collected_cents for bar in chart.bars) == 6500


def test_no_transactions_means_no_chart_and_zero_totals(client_for, manager):
    response = client_for(manager).get(DASHBOARD, {"status": ["refunded"]})
    summary = response.context["summary"]

    assert (summary.count, summary.collected_cents, summary.refunded_cents, summary.chart.bars) == (0, 0, 0, [])
    assert "No transaction matches these filters." in response.content.decode()


def test_htmx_gets_the_results_alone(client_for, manager, data):
    response = client_for(manager).get(DASHBOARD, {"kind": ["balance"]}, **HTMX)
    body = response.content.decode()

    assert response.templates[0].name == "transactions/dashboard/_results.html"
    assert body.lstrip().startswith('<section id="transaction-results" aria-label="Transactions" hx-history="false">')
    assert "<html" not in body
    assert 'role="search"' not in body
    assert _names(response, data) == ["t4", "t3"]
    assert {"HX-Request", "HX-Target"} <= {value.strip() for value in response["Vary"].split(",")}


def test_htmx_history_restore_gets_the_whole_page(client_for, manager, data):
    response = client_for(manager).get(
        DASHBOARD, {"kind": ["balance"]}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX
    )
    body = response.content.decode()

    assert response.templates[0].name == "transactions/dashboard/list.html"
    assert "<html" in body and 'role="search"' in body


def test_a_plain_visit_gets_the_page_with_a_working_form(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD).content.decode()

    assert '<form method="get" action="/" role="search"' in body
    assert 'hx-get="/" hx-target="#transaction-results" hx-swap="outerHTML" hx-push-url="true"' in body
    assert '<section id="transaction-results"' in body
    assert '<button type="submit">Apply filters</button>' in body


def test_filters_round_trip_through_the_url(client_for, manager, data, other_location):
    params = {
        "q": "ann", "created_from": "2026-03-01", "created_to": "2026-03-31", "amount_min": "30",
        "status": ["succeeded", "partially_refunded"], "location": [str(other_location.pk)], "vendor": "sandbox",
        "has_errors": "false",
    }
    response = client_for(manager).get(DASHBOARD, params)
    body = response.content.decode()

    assert _names(response, data) == ["t3"]
    assert 'name="q" value="ann"' in body
    assert 'name="created_from" value="2026-03-01"' in body
    assert 'name="amount_min" value="30"' in body
    assert 'name="status" value="succeeded" id="id_status_1" checked' in body
    assert 'name="status" value="pending" id="id_status_0">' in body
    assert f'name="location" value="{other_location.pk}" id="id_location_1" checked' in body
    assert '<option value="sandbox" selected>' in body
    assert '<option value="false" selected>Without errors</option>' in body
    # The same filters, in order, for links and the export.
    query = response.context["filter_query"]
    assert query == (
        f"q=ann&created_from=2026-03-01&created_to=2026-03-31&amount_min=30&status=succeeded"
        f"&status=partially_refunded&location={other_location.pk}&vendor=sandbox&has_errors=false"
    )
    again = client_for(manager).get(f"{DASHBOARD}?{query}")
    assert _names(again, data) == ["t3"]
    assert '<input type="hidden" name="status" value="partially_refunded">' in body


def test_pages_go_older_and_newer_and_keep_the_filters(client_for, manager, organization, location):
    patient = PatientFactory(organization=organization)
    start = local(LA, 2026, 1, 1, 9, 0)
    made = []
    for number in range(27):
        made.append(ledger_transaction(
            organization=organization, location=location, patient=patient,
            created_at=start + datetime.timedelta(hours=number), amount_cents=6000,
        ).pk)
    # Noise the filter leaves out, newer than all of them.
    ledger_transaction(organization=organization, location=location, patient=patient,
                       created_at=start + datetime.timedelta(days=5), amount_cents=1000)
    newest_first = list(reversed(made))
    client = client_for(manager)

    first = client.get(DASHBOARD, {"amount_min": "50"})
    page = first.context["page"]
    second = client.get(DASHBOARD, {"amount_min": "50", "older_than": page.older_cursor})
    back = client.get(DASHBOARD, {"amount_min": "50", "newer_than": second.context["page"].newer_cursor})

    assert [t.pk for t in page.object_list] == newest_first[:25]
    assert (page.has_newer, page.has_older) == (False, True)
    assert [t.pk for t in second.context["page"].object_list] == newest_first[25:]
    assert (second.context["page"].has_newer, second.context["page"].has_older) == (True, False)
    assert [t.pk for t in back.context["page"].object_list] == newest_first[:25]
    assert f'href="/?amount_min=50&amp;older_than={page.older_cursor}"' in first.content.decode()
    second_body = second.content.decode()
    assert f'href="/?amount_min=50&amp;newer_than={second.context["page"].newer_cursor}"' in second_body
    assert 'href="/?amount_min=50"' in second_body
    assert second.context["summary"].count == 27


def test_ties_on_the_same_moment_page_by_id(client_for, manager, organization, location):
    patient = PatientFactory(organization=organization)
    moment = local(LA, 2026, 2, 2, 9, 0)
    made = [
        ledger_transaction(organization=organization, location=location, patient=patient, created_at=moment).pk
        for _ in range(27)
    ]
    client = client_for(manager)

    first = client.get(DASHBOARD).context["page"]
    second = client.get(DASHBOARD, {"older_than": first.older_cursor}).context["page"]

    assert [t.pk for t in first.object_list] + [t.pk for t in second.object_list] == sorted(made, reverse=True)


def test_a_broken_cursor_shows_the_first_page(client_for, manager, data):
    response = client_for(manager).get(DASHBOARD, {"older_than": "12_x"})

    assert _names(response, data) == ["t5", "t4", "t6", "t3", "t2", "t1"]


def test_a_deep_page_runs_the_same_queries_and_no_count_or_offset(client_for, manager, organization, location):
    patient = PatientFactory(organization=organization)
    start = local(LA, 2026, 1, 1, 9, 0)
    for number in range(60):
        ledger_transaction(organization=organization, location=location, patient=patient,
                           created_at=start + datetime.timedelta(hours=number))
    client = client_for(manager)
    first = client.get(DASHBOARD, {"kind": ["copay"]})
    cursor = client.get(DASHBOARD, {"kind": ["copay"], "older_than": first.context["page"].older_cursor})

    with CaptureQueriesContext(connection) as top:
        client.get(DASHBOARD, {"kind": ["copay"]})
    with CaptureQueriesContext(connection) as deep:
        client.get(DASHBOARD, {"kind": ["copay"], "older_than": cursor.context["page"].older_cursor})

    assert len(deep) == len(top)
    statements = [query["sql"] for query in deep.captured_queries]
    assert not any("OFFSET" in sql for sql in statements)
    # the totals are one grouped query over the daily totals (a kind filter): nothing counts rows
    grouped = [sql for sql in statements if "GROUP BY" in sql]
    assert len(grouped) == 1 and 'FROM "transactions_daily' in grouped[0]
    assert not any("COUNT(" in sql for sql in statements)


def test_the_filterset_summary_reads_in_words(manager, organization, data, other_location):
    membership = organization.memberships.get(user=manager)
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    query.update({"q": " ann ", "created_from": "2026-03-01", "amount_max": "50", "vendor": "stripe",
                  "card_brand": "amex", "has_errors": "true"})
    query.setlist("status", ["succeeded", "refunded"])
    query.setlist("location", [str(other_location.pk)])
    query.setlist("billing_item", ["Statement balance"])

    summary = TransactionFilter(query, membership=membership).summary()

    assert summary == [
        ("Patient", "ann"),
        ("Created", "from Mar 1, 2026"),
        ("Amount", "up to $50.00"),
        ("Status", "Succeeded, Refunded"),
        ("Billing item", "Statement balance"),
        ("Location", "Northside Clinic"),
        ("Vendor", "Stripe"),
        ("Card brand", "American Express"),
        ("Errors", "With errors"),
    ]


def test_sub_account_users_see_no_export_button(client_for, staff_user, manager, data):
    staff_body = client_for(staff_user).get(DASHBOARD).content.decode()
    manager_body = client_for(manager).get(DASHBOARD).content.decode()

    assert "Export 4 transactions to Excel" not in staff_body
    assert 'action="/transactions/export/"' not in staff_body
    assert "Export 6 transactions to Excel" in manager_body


def test_a_member_of_two_organizations_filters_the_current_one(client_for, organization, data):
    from tests.factories import OrganizationFactory

    second = OrganizationFactory(name="Lakeside Pediatrics")
    member = MembershipFactory(organization=organization, role=Role.MANAGER).user
    MembershipFactory(user=member, organization=second, role=Role.MANAGER)
    client = client_for(member)
    client.post(reverse("organization_switch"), {"organization": second.pk})

    response = client.get(DASHBOARD, {"q": "maria"})

    assert response.context["page"].object_list == []
    assert response.context["summary"].count == 0


def test_the_dashboard_indexes_exist_as_designed(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)",
            [["transaction_org_created_cover", "transaction_org_location_cover", "transaction_org_billing_cover",
              "transaction_org_amount_cover", "transaction_patient_cover", "transaction_org_paid",
              "transaction_event_failures", "daily_total_cell", "daily_card_total_cell", "daily_amount_total_cell",
              "daily_paid_total_cell"]],
        )
        definitions = {name: definition.split(" USING ", 1)[1] for name, definition in cursor.fetchall()}

    assert definitions == {
        "transaction_org_created_cover": (
            "btree (organization_id, created_at DESC, id DESC) INCLUDE (location_id, status, kind, amount_cents, "
            "charged_cents, refunded_cents, paid_at, vendor, card_brand, has_unresolved_problems)"
        ),
        "transaction_org_location_cover": (
            "btree (organization_id, location_id, created_at DESC, id DESC) INCLUDE (status, kind, amount_cents, "
            "charged_cents, refunded_cents, paid_at, vendor, card_brand, has_unresolved_problems)"
        ),
        "transaction_org_billing_cover": (
            "btree (organization_id, billing_item, created_at DESC, id DESC) INCLUDE (location_id, paid_at, status, "
            "kind, amount_cents, charged_cents, refunded_cents, vendor, card_brand, has_unresolved_problems)"
        ),
        "transaction_org_amount_cover": (
            "btree (organization_id, amount_cents) INCLUDE (location_id, created_at, paid_at, status, kind, "
            "charged_cents, refunded_cents, vendor, card_brand, has_unresolved_problems)"
        ),
        "transaction_patient_cover": (
            "btree (patient_id, created_at DESC, id DESC) INCLUDE (organization_id, location_id, paid_at, status, "
            "kind, amount_cents, charged_cents, refunded_cents, vendor, card_brand, has_unresolved_problems)"
        ),
        "daily_total_cell": (
            "btree (organization_id, location_id, kind, created_on, paid_on, status, has_unresolved_problems) "
            "INCLUDE (transactions, charged_cents, refunded_cents, payments) NULLS NOT DISTINCT"
        ),
        "daily_card_total_cell": (
            "btree (organization_id, created_on, paid_on, status, kind, vendor, card_brand, has_unresolved_problems) "
            "INCLUDE (transactions, charged_cents, refunded_cents, payments) NULLS NOT DISTINCT"
        ),
        "daily_amount_total_cell": (
            "btree (organization_id, amount_low, paid_on) "
            "INCLUDE (amount_high, transactions, charged_cents, refunded_cents, payments) NULLS NOT DISTINCT"
        ),
        "daily_paid_total_cell": (
            "btree (organization_id, paid_on) INCLUDE (transactions, charged_cents, refunded_cents, payments) "
            "NULLS NOT DISTINCT"
        ),
        "transaction_org_paid": "btree (organization_id, paid_at DESC) WHERE (paid_at IS NOT NULL)",
        "transaction_event_failures": (
            "btree (organization_id, transaction_id) WHERE ((kind)::text = ANY "
            "((ARRAY['charge_failed'::character varying, 'refund_failed'::character varying])::text[]))"
        ),
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"created_from": "2026-03-01", "created_to": "2026-03-31"},
        {"paid_from": "2026-03-22", "paid_to": "2026-03-22"},
        {"status": ["succeeded", "partially_refunded"], "kind": ["copay"]},
        {"has_errors": "true"},
        {"has_errors": "false", "created_to": "2026-03-20"},
        {"vendor": "sandbox"},
        {"card_brand": "visa", "status": ["failed", "succeeded"], "paid_from": "2026-02-01"},
        {"vendor": "stripe", "card_brand": "mastercard", "has_errors": "false"},
        {"vendor": "stripe", "kind": ["copay"]},
        {"kind": ["balance", "copay"], "card_brand": "visa", "paid_from": "2026-02-01"},
        # amounts: whole bands only, and a bound that cuts a band (read from the transactions)
        {"amount_min": "50"},
        {"amount_min": "15", "amount_max": "30", "paid_from": "2026-03-01"},
        {"amount_min": "50.01", "amount_max": "120"},
        {"amount_min": "50.50", "amount_max": "75"},
        {"amount_max": "50.01"},
        {"amount_min": "50.01", "amount_max": "50.01"},
        {"amount_min": "100.50", "paid_to": "2026-03-31"},
    ],
)
def test_the_daily_totals_give_exactly_what_summing_the_transactions_gives(manager, data, location, params):
    from django.http import QueryDict

    from org_profile.models import Membership

    membership = Membership.objects.get(user=manager)
    query = QueryDict(mutable=True)
    for name, value in params.items():
        query.setlist(name, value if isinstance(value, list) else [value])
    # the location filter too, as a sub-account user's scope would add it
    filterset = TransactionFilter(query, membership=membership)
    cells = filterset.daily_totals()
    assert cells is not None

    summed = dashboard_summary(filterset.qs, organization=membership.organization, today=datetime.date(2026, 4, 30))
    ahead = dashboard_summary(
        filterset.qs, organization=membership.organization, today=datetime.date(2026, 4, 30), daily_totals=cells
    )

    assert ahead == summed
    assert ahead.count == filterset.qs.count()


@pytest.mark.parametrize(
    "params",
    [{"q": "lopez"}, {"amount_min": "50", "status": ["succeeded"]}, {"billing_item": ["Statement balance"]},
     {"vendor": "stripe", "location": ["LOCATION"]}, {"card_brand": "visa", "location": ["LOCATION"]}],
)
def test_filters_the_daily_totals_cannot_answer_sum_the_transactions(manager, data, location, params):
    from django.http import QueryDict

    from org_profile.models import Membership

    query = QueryDict(mutable=True)
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        query.setlist(name, [str(location.pk) if v == "LOCATION" else v for v in values])
    filterset = TransactionFilter(query, membership=Membership.objects.get(user=manager))

    assert filterset.form.is_valid()
    assert filterset.daily_totals() is None


def test_a_sub_account_users_card_filters_sum_the_transactions_of_their_locations(staff_user, data):
    from org_profile.models import Membership

    membership = Membership.objects.get(user=staff_user)
    by_vendor = TransactionFilter({"vendor": "sandbox"}, membership=membership)
    by_status = TransactionFilter({"status": ["succeeded"]}, membership=membership)

    # the vendor cells are organization-wide, so they cannot answer for one location
    assert by_vendor.daily_totals() is None
    summary = dashboard_summary(
        by_status.qs, organization=membership.organization, daily_totals=by_status.daily_totals()
    )
    assert summary.count == by_status.qs.count() == 3


def test_the_daily_totals_follow_every_change_and_a_time_zone_change(organization, location, other_location):
    from transactions.models import DailyCardTotal, DailyTotal

    # given payments, a refund, a failure, and a transaction moved to another location and day
    patient = PatientFactory(organization=organization)
    organization.timezone = LA
    organization.save(update_fields=["timezone"])
    late = ledger_transaction(organization=organization, location=location, patient=patient,
                              created_at=local(LA, 2026, 3, 1, 23, 30), refunded_cents=1000)
    ledger_transaction(organization=organization, location=other_location, patient=patient,
                       created_at=local(LA, 2026, 3, 2, 9, 0), outcome="declined")
    ledger_transaction(organization=organization, location=location, patient=patient,
                       created_at=local(LA, 2026, 3, 2, 10, 0), refund_fails=True)
    Transaction.objects.filter(pk=late.pk).update(location=other_location)

    def cells():
        return sorted(
            (c.created_on.isoformat(), c.location_id, c.paid_on.isoformat() if c.paid_on else "", c.status,
             c.has_unresolved_problems, c.transactions, c.charged_cents, c.refunded_cents, c.payments)
            for c in DailyTotal.objects.filter(organization=organization).exclude(transactions=0)
        )

    # then the cells hold each transaction once, in its current place, in Los Angeles days
    assert cells() == [
        ("2026-03-01", other_location.pk, "2026-03-01", "partially_refunded", False, 1, 5000, 1000, 1),
        ("2026-03-02", location.pk, "2026-03-02", "succeeded", True, 1, 5000, 0, 1),
        ("2026-03-02", other_location.pk, "", "failed", True, 1, 0, 0, 0),
    ]
    assert not DailyTotal.objects.filter(organization=organization, transactions__lt=0).exists()

    # when the organization moves to New York, 23:30 in Los Angeles is the next day there
    organization.timezone = "America/New_York"
    organization.save(update_fields=["timezone"])

    assert cells() == [
        ("2026-03-02", location.pk, "2026-03-02", "succeeded", True, 1, 5000, 0, 1),
        ("2026-03-02", other_location.pk, "", "failed", True, 1, 0, 0, 0),
        ("2026-03-02", other_location.pk, "2026-03-02", "partially_refunded", False, 1, 5000, 1000, 1),
    ]
    # and the vendor and card-brand cells hold the same rows, in New York days too
    card_cells = sorted(
        (c.created_on.isoformat(), c.paid_on.isoformat() if c.paid_on else "", c.status, c.vendor, c.card_brand,
         c.transactions, c.charged_cents, c.refunded_cents, c.payments)
        for c in DailyCardTotal.objects.filter(organization=organization).exclude(transactions=0)
    )
    vendor = organization.payment_gateway
    assert card_cells == [
        ("2026-03-02", "", "failed", vendor, "visa", 1, 0, 0, 0),
        ("2026-03-02", "2026-03-02", "partially_refunded", vendor, "visa", 1, 5000, 1000, 1),
        ("2026-03-02", "2026-03-02", "succeeded", vendor, "visa", 1, 5000, 0, 1),
    ]
    assert not DailyCardTotal.objects.filter(transactions__lt=0).exists()


@pytest.mark.parametrize(
    ("params", "expected_cut"),
    [
        ({"amount_min": "20", "amount_max": "30"}, False),
        ({"amount_min": "100"}, False),
        ({"amount_min": "1000", "amount_max": "1999.99"}, False),
        ({"amount_min": "20.50"}, True),
        ({"amount_min": "150"}, True),
        ({"amount_max": "150"}, True),
    ],
)
def test_an_amount_range_reads_the_transactions_only_where_a_bound_cuts_a_band(manager, params, expected_cut):
    from org_profile.models import Membership

    filterset = TransactionFilter(params, membership=Membership.objects.get(user=manager))

    summed_ahead = filterset.daily_totals()

    assert summed_ahead is not None
    assert (summed_ahead.rest is not None) is expected_cut


def test_the_amount_bands_in_python_are_the_bands_of_the_database():
    from django.db import connection

    from transactions.models import amount_band

    amounts = [1, 99, 100, 101, 1999, 2000, 2001, 2050, 2099, 2100, 9999, 10000, 10001, 15000, 19999, 20000,
               99999, 100000, 123456, 199999, 200000, 10000000]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT transactions_amount_band_low(a), transactions_amount_band_high(a) FROM unnest(%s::bigint[]) a",
            [amounts],
        )
        in_database = cursor.fetchall()

    assert in_database == [amount_band(a) for a in amounts]
    # the bands do not overlap: each amount is in its own band and in no other
    bands = sorted(set(amount_band(a) for a in range(1, 300_000, 7)))
    assert all(previous[1] < following[0] for previous, following in zip(bands, bands[1:]))


def test_the_amount_and_kind_cells_follow_every_change(organization, location):
    from transactions.models import DailyAmountTotal, DailyCardTotal

    # given two payments in New York, $30.00 and $150.25
    organization.timezone = "America/New_York"
    organization.save(update_fields=["timezone"])
    patient = PatientFactory(organization=organization)
    copay = ledger_transaction(organization=organization, location=location, patient=patient, amount_cents=3000,
                               created_at=local("America/New_York", 2026, 3, 2, 9, 0))
    balance = ledger_transaction(organization=organization, location=location, patient=patient, amount_cents=15025,
                                 kind=PaymentRequestKind.BALANCE,
                                 created_at=local("America/New_York", 2026, 3, 3, 9, 0), refunded_cents=25)

    def amount_cells():
        return sorted(
            (c.amount_low, c.amount_high, c.paid_on.isoformat() if c.paid_on else "", c.transactions,
             c.charged_cents, c.refunded_cents, c.payments)
            for c in DailyAmountTotal.objects.filter(organization=organization).exclude(transactions=0)
        )

    assert amount_cells() == [
        (3000, 3000, "2026-03-02", 1, 3000, 0, 1),
        (10000, 19999, "2026-03-03", 1, 15025, 25, 1),
    ]
    # when the copay's amount changes to $30.50 and the balance becomes a copay
    Transaction.objects.filter(pk=copay.pk).update(amount_cents=3050, charged_cents=3050)
    Transaction.objects.filter(pk=balance.pk).update(kind=PaymentRequestKind.COPAY)

    # then each sits in its new cell, and no cell is left negative
    assert amount_cells() == [
        (3001, 3099, "2026-03-02", 1, 3050, 0, 1),
        (10000, 19999, "2026-03-03", 1, 15025, 25, 1),
    ]
    assert not DailyAmountTotal.objects.filter(transactions__lt=0).exists()
    kinds = sorted(
        (c.kind, c.transactions) for c in DailyCardTotal.objects.filter(organization=organization).exclude(transactions=0)
    )
    assert kinds == [("copay", 1), ("copay", 1)]


def test_the_paid_day_cells_follow_every_change_a_deletion_and_a_time_zone_change(organization, location):
    from transactions.models import DailyPaidTotal

    # given a payment late in the evening in Los Angeles, a refunded one, and one still unpaid
    organization.timezone = LA
    organization.save(update_fields=["timezone"])
    patient = PatientFactory(organization=organization)
    late = ledger_transaction(organization=organization, location=location, patient=patient,
                              created_at=local(LA, 2026, 3, 1, 23, 30))
    refunded = ledger_transaction(organization=organization, location=location, patient=patient, amount_cents=3000,
                                  created_at=local(LA, 2026, 3, 2, 9, 0), refunded_cents=1000)
    unpaid = ledger_transaction(organization=organization, location=location, patient=patient,
                                created_at=local(LA, 2026, 3, 2, 10, 0), outcome="pending")

    def cells():
        return sorted(
            (c.paid_on.isoformat() if c.paid_on else "", c.transactions, c.charged_cents, c.refunded_cents, c.payments)
            for c in DailyPaidTotal.objects.filter(organization=organization).exclude(transactions=0)
        )

    # then each transaction is in the cell of its local day paid, the unpaid one in the day-less cell
    assert cells() == [("", 1, 0, 0, 0), ("2026-03-01", 1, 5000, 0, 1), ("2026-03-02", 1, 3000, 1000, 1)]

    # when the unpaid one is paid the next day, the refunded one is refunded a little more, and the
    # late one is deleted
    Transaction.objects.filter(pk=unpaid.pk).update(
        paid_at=local(LA, 2026, 3, 3, 8, 0), charged_cents=4000, status=TransactionStatus.SUCCEEDED
    )
    Transaction.objects.filter(pk=refunded.pk).update(refunded_cents=1500)
    with connection.cursor() as cursor:
        # (its ledger events first: they protect it)
        cursor.execute("DELETE FROM transactions_transactionevent WHERE transaction_id = %s", [late.pk])
        cursor.execute("DELETE FROM transactions_transaction WHERE id = %s", [late.pk])

    # then the cells moved with them, and none is left negative
    assert cells() == [("2026-03-02", 1, 3000, 1500, 1), ("2026-03-03", 1, 4000, 0, 1)]
    assert not DailyPaidTotal.objects.filter(transactions__lt=0).exists()

    # when the organization moves to Tokyo, 8:00 on Mar 3 in Los Angeles is Mar 4 there
    organization.timezone = "Asia/Tokyo"
    organization.save(update_fields=["timezone"])
    assert cells() == [("2026-03-03", 1, 3000, 1500, 1), ("2026-03-04", 1, 4000, 0, 1)]


@pytest.mark.parametrize("params", [{}, {"paid_from": "2026-03-01"}, {"paid_from": "2026-03-01", "paid_to": "2026-03-22"}])
def test_the_unfiltered_page_and_the_paid_dates_alone_read_the_paid_day_cells(client_for, manager, data, params):
    # when a manager opens the dashboard unfiltered, or filtered by the days paid alone
    with CaptureQueriesContext(connection) as captured:
        response = client_for(manager).get(DASHBOARD, params)

    # then the totals are summed from one cell per day paid, never from the transactions or the amount bands
    assert response.status_code == 200
    sums = [q["sql"] for q in captured.captured_queries if "SUM(" in q["sql"].upper()]
    assert len(sums) == 1
    assert '"transactions_dailypaidtotal"' in sums[0]


def test_each_filterset_has_its_own_filters_choices_and_fields(manager, organization, data, other_organization):
    from org_profile.models import Membership

    other_manager = MembershipFactory(organization=other_organization, role=Role.MANAGER)
    LocationFactory(organization=other_organization, name="Lakeside")

    ours = TransactionFilter({"has_errors": "true"}, membership=Membership.objects.get(user=manager))
    theirs = TransactionFilter({}, membership=other_manager)

    # the filters, their choices and the form's fields are each filterset's own; the class's are untouched
    assert ours.filters["location"] is not theirs.filters["location"]
    assert [name for _, name in theirs.filters["location"].extra["choices"]] == ["Lakeside"]
    assert "Lakeside" not in [name for _, name in ours.filters["location"].extra["choices"]]
    assert "choices" not in TransactionFilter.base_filters["location"].extra or not TransactionFilter.base_filters[
        "location"].extra["choices"]
    assert ours.form.fields["location"] is not theirs.form.fields["location"]
    assert [name for _, name in theirs.form.fields["location"].choices] == ["Lakeside"]
    # a filter with a method of its own finds it on its own filterset
    assert ours.filters["has_errors"].filter.method.__self__ is ours
    assert ours.qs.count() == Transaction.objects.filter(organization=organization, has_unresolved_problems=True).count()


@pytest.mark.parametrize("params", [{}, {"created_from": "2026-03-01"}, {"status": ["succeeded"]}])
def test_the_pages_ids_come_from_the_transactions_alone_and_only_its_rows_join(client_for, manager, data, params):
    # when a manager opens a page of the dashboard
    with CaptureQueriesContext(connection) as captured:
        response = client_for(manager).get(DASHBOARD, params)

    # then the ids' subquery joins nothing (it is a range of a covering index), the rows join the
    # patient and the location they name
    assert response.status_code == 200
    [page] = [q["sql"] for q in captured.captured_queries if "LIMIT 26" in q["sql"]]
    rows, _, ids = page.partition(" IN (SELECT ")
    assert "JOIN" not in ids
    assert '"ehr_sync_patient"' in rows and '"org_profile_location"' in rows
    assert [row.pk for row in response.context["page"].object_list] == [
        t.pk for t in TransactionFilter(params, membership=manager.memberships.get()).qs[:25]
    ]
