"""The payouts page: balance and payouts on their way, the filtered list (each filter, combined,
dates at the organization's midnight), keyset paging, totals of the filtered set, the empty
states, htmx, and who may see it."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from org_profile.enums import Role
from payouts.enums import PayoutMethod, PayoutStatus
from tests.factories import LocationFactory, MembershipFactory

from .factories import GatewayBalanceFactory, PayoutFactory

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
URL = "/payouts/"


def at(year, month, day, hour=12, minute=0):
    """A moment in the organization's time zone (New York)."""
    return datetime.datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def ids(response):
    return [payout.pk for payout in response.context["page"].object_list]


@pytest.fixture
def signed_in_manager(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def payouts(organization):
    """Six payouts, one of each kind a filter tells apart."""
    return {
        "paid_small": PayoutFactory(organization=organization, amount_cents=9_999, created_at=at(2026, 3, 1),
                                    arrival_date=datetime.date(2026, 3, 3)),
        "paid_big": PayoutFactory(organization=organization, amount_cents=250_000, created_at=at(2026, 3, 10),
                                  arrival_date=datetime.date(2026, 3, 12)),
        "failed": PayoutFactory(organization=organization, amount_cents=40_000, status=PayoutStatus.FAILED,
                                failure_message="The bank account was closed.", created_at=at(2026, 3, 20),
                                arrival_date=datetime.date(2026, 3, 23)),
        "instant": PayoutFactory(organization=organization, amount_cents=10_000, method=PayoutMethod.INSTANT,
                                 created_at=at(2026, 3, 31, 23, 30), arrival_date=datetime.date(2026, 3, 31)),
        "in_transit": PayoutFactory(organization=organization, amount_cents=55_500, status=PayoutStatus.IN_TRANSIT,
                                    created_at=at(2026, 4, 1, 0, 15), arrival_date=datetime.date(2026, 4, 3)),
        "canceled": PayoutFactory(organization=organization, amount_cents=7_000, status=PayoutStatus.CANCELED,
                                  created_at=at(2026, 4, 2), arrival_date=datetime.date(2026, 4, 4)),
    }


def test_the_list_is_newest_first_with_totals(signed_in_manager, payouts):
    response = signed_in_manager.get(URL)

    assert response.status_code == 200
    assert ids(response) == [payouts[name].pk for name in
                             ("canceled", "in_transit", "instant", "failed", "paid_big", "paid_small")]
    totals = response.context["totals"]
    assert totals.count == 6
    # Failed and cancelled payouts' money went back to the balance (and out in a later payout):
    # it is shown apart, never added to what reached the bank.
    assert [(t.currency, t.count, t.amount_cents, t.returned_count, t.returned_cents) for t in totals.by_currency] == [
        ("usd", 6, 372_499 - 40_000 - 7_000, 2, 47_000)
    ]
    body = response.content.decode()
    assert "$3,254.99" in body and "$470.00" in body


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, ["failed"]),
        ({"status": ["paid", "canceled"]}, ["canceled", "instant", "paid_big", "paid_small"]),
        ({"method": "instant"}, ["instant"]),
        ({"method": "standard"}, ["canceled", "in_transit", "failed", "paid_big", "paid_small"]),
        ({"amount_min": "100"}, ["in_transit", "instant", "failed", "paid_big"]),
        ({"amount_max": "99.99"}, ["canceled", "paid_small"]),
        ({"amount_min": "$400", "amount_max": "555"}, ["in_transit", "failed"]),
        ({"arrival_from": "2026-03-23", "arrival_to": "2026-04-03"}, ["in_transit", "instant", "failed"]),
        ({"arrival_to": "2026-03-03"}, ["paid_small"]),
        ({"created_from": "2026-03-10", "created_to": "2026-03-20"}, ["failed", "paid_big"]),
        # Combined: every filter narrows the others.
        ({"status": "paid", "amount_min": "50", "created_from": "2026-03-05"}, ["instant", "paid_big"]),
        ({"status": "paid", "method": "standard", "arrival_to": "2026-03-31"}, ["paid_big", "paid_small"]),
        ({"status": ["paid", "failed", "in_transit"], "method": "standard", "amount_min": "100",
          "amount_max": "2000", "created_from": "2026-03-01", "created_to": "2026-04-01",
          "arrival_from": "2026-03-12", "arrival_to": "2026-04-03"}, ["in_transit", "failed"]),
    ],
)
def test_each_filter_alone_and_combined(signed_in_manager, payouts, params, expected):
    response = signed_in_manager.get(URL, params)

    assert ids(response) == [payouts[name].pk for name in expected]
    assert response.context["totals"].count == len(expected)
    total = response.context["totals"].by_currency[0]
    returned = [n for n in expected if n in ("failed", "canceled")]
    assert total.amount_cents == sum(payouts[n].amount_cents for n in expected if n not in returned)
    assert total.returned_cents == sum(payouts[n].amount_cents for n in returned)


def test_created_dates_are_the_organizations_days_at_midnight(signed_in_manager, payouts):
    # 23:30 on Mar 31 in New York is Apr 1 in UTC; 00:15 on Apr 1 in New York is still Apr 1.
    march_31 = signed_in_manager.get(URL, {"created_from": "2026-03-31", "created_to": "2026-03-31"})
    april_1 = signed_in_manager.get(URL, {"created_from": "2026-04-01", "created_to": "2026-04-01"})

    assert ids(march_31) == [payouts["instant"].pk]
    assert ids(april_1) == [payouts["in_transit"].pk]


def test_created_dates_follow_the_organizations_own_zone(signed_in_manager, organization, payouts):
    organization.timezone = "America/Los_Angeles"
    organization.save()

    # 23:30 New York on Mar 31 is 20:30 in Los Angeles, and 00:15 on Apr 1 is 21:15 on Mar 31.
    response = signed_in_manager.get(URL, {"created_from": "2026-03-31", "created_to": "2026-03-31"})

    assert ids(response) == [payouts["in_transit"].pk, payouts["instant"].pk]


def test_a_filter_that_does_not_validate_is_left_out_and_said(signed_in_manager, payouts):
    response = signed_in_manager.get(URL, {"amount_min": "lots", "status": "failed",
                                           "created_from": "2026-03-15", "created_to": "2026-03-01"})

    assert ids(response) == [payouts["failed"].pk]
    errors = dict(response.context["filter_errors"])
    assert set(errors) == {"Amount from ($)", "Created to"}
    assert "The end date is before the start date." in response.content.decode()


def test_keyset_pages_walk_the_whole_filtered_set_once(signed_in_manager, organization):
    start = at(2026, 1, 1)
    made = [PayoutFactory(organization=organization, created_at=start + datetime.timedelta(days=n)) for n in range(60)]
    # Two payouts at the same microsecond: the cursor settles the tie by id.
    made.append(PayoutFactory(organization=organization, created_at=made[30].created_at))
    PayoutFactory(organization=organization, status=PayoutStatus.FAILED, created_at=start)

    seen, query = [], {"status": "paid"}
    while True:
        response = signed_in_manager.get(URL, query)
        page = response.context["page"]
        seen += ids(response)
        if not page.has_older:
            break
        query = {"status": "paid", "older_than": page.older_cursor}
        assert f"older_than={page.older_cursor}" in response.content.decode()

    expected = sorted(made, key=lambda p: (p.created_at, p.pk), reverse=True)
    assert seen == [p.pk for p in expected]
    assert len(seen) == 61

    # Back to newer from the second page: the first page again.
    second = signed_in_manager.get(URL, {"status": "paid", "older_than": response.context["page"].newer_cursor})
    assert second.context["page"].has_newer


def test_balance_next_payout_and_payouts_on_their_way_are_at_the_top(signed_in_manager, organization, payouts):
    GatewayBalanceFactory(organization=organization, available_cents=48_210, pending_cents=12_055,
                          next_payout_date=datetime.date(2026, 4, 6), next_payout_estimate_cents=48_210)
    pending = PayoutFactory(organization=organization, status=PayoutStatus.PENDING, amount_cents=3_300,
                            created_at=at(2026, 4, 3), arrival_date=datetime.date(2026, 4, 7))

    response = signed_in_manager.get(URL)

    html = response.content.decode()
    assert [p.pk for p in response.context["on_the_way"]] == [payouts["in_transit"].pk, pending.pk]
    assert "$482.10" in html and "$120.55" in html
    assert "Apr 6, 2026, about $482.10" in html
    assert "arrives Apr 3, 2026 in the account ending 6789" in html


def test_a_negative_balance_says_where_the_shortfall_comes_from(signed_in_manager, organization):
    GatewayBalanceFactory(organization=organization, available_cents=-112_650, pending_cents=0)

    html = signed_in_manager.get(URL).content.decode()

    assert "\u2212$1,126.50" in html
    assert "Refunds and disputes took more than the available money" in html
    assert "takes the $1,126.50 from the next payments first" in html


def test_a_positive_balance_has_no_shortfall_notice(signed_in_manager, organization):
    GatewayBalanceFactory(organization=organization, available_cents=100, pending_cents=0)
    assert "took more than the available money" not in signed_in_manager.get(URL).content.decode()


def test_an_empty_list_says_what_to_do(signed_in_manager):
    response = signed_in_manager.get(URL)

    html = response.content.decode()
    assert "No payouts yet." in html
    assert "has not reported a balance yet" in html
    assert "Export" not in html


def test_a_filter_matching_nothing_offers_to_clear_it(signed_in_manager, payouts):
    response = signed_in_manager.get(URL, {"status": "failed", "method": "instant"})

    assert "No payout matches these filters." in response.content.decode()
    assert response.context["totals"].count == 0


def test_htmx_gets_only_the_results(signed_in_manager, payouts):
    response = signed_in_manager.get(URL, {"status": "failed"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="payout-results")

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="payout-results"') or 'id="payout-results"' in html.split("\n", 3)[1]
    assert "<html" not in html and "Balance" not in html
    assert ids(response) == [payouts["failed"].pk]
    assert "HX-Request" in response["Vary"]


def test_another_organizations_payouts_are_not_listed(signed_in_manager, payouts, other_organization):
    PayoutFactory(organization=other_organization, amount_cents=999_999)

    response = signed_in_manager.get(URL)

    assert response.context["totals"].count == 6
    assert "$9,999.99" not in response.content.decode()


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER])
def test_managers_and_administrators_see_payouts_in_the_menu(client, organization, role):
    user = MembershipFactory(organization=organization, role=role).user
    client.force_login(user)

    html = client.get(reverse("transactions:dashboard")).content.decode()

    assert f'href="{URL}"' in html


def test_sub_account_users_see_nothing_of_payouts(client, organization, payouts):
    location = LocationFactory(organization=organization)
    staff = MembershipFactory(organization=organization, role=Role.STAFF, locations=[location]).user
    client.force_login(staff)

    assert f'href="{URL}"' not in client.get(reverse("transactions:dashboard")).content.decode()
    for url in (URL, f"{URL}?status=paid", reverse("payouts:detail", args=[payouts["paid_big"].pk]),
                reverse("payouts:detail", args=[987654321]), reverse("payouts:export")):
        assert client.get(url).status_code == 403, url
        assert client.post(url).status_code == 403, url
