"""The dashboard's compact filter bar, its removable chips and the chart's ticks and bar links.

What fits above the fold at 1366×900 and at 390 px is checked in a browser (README, "The
dashboard"); these tests pin the HTML that makes it work with htmx and without JavaScript.
"""

import re
from html import unescape

import pytest
from django.urls import reverse

from .test_dashboard_filters import DASHBOARD, HTMX, data  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def _chips(body: str) -> list[tuple[str, str]]:
    """(text, href) of each chip, in order."""
    return [
        (re.sub(r"<[^>]+>", "", unescape(text)).replace("×", "").strip(), unescape(href))
        for href, text in re.findall(r'<a class="chip(?: chip-invalid)?" href="([^"]*)"[^>]*>(.*?)</a>', body, re.S)
    ]


def test_the_bar_shows_patient_created_dates_and_status_inline_and_the_rest_under_more_filters(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD).content.decode()

    inline, more = body.split('<details class="more-filters">', 1)
    more = more.split("</details>\n</form>", 1)[0]
    for name in ("q", "created_from", "created_to", "status"):
        assert f'name="{name}"' in inline and f'name="{name}"' not in more, name
    for name in ("paid_from", "paid_to", "amount_min", "amount_max", "kind", "location", "billing_item", "vendor",
                 "card_brand", "has_errors"):
        assert f'name="{name}"' in more and f'name="{name}"' not in inline, name
    assert "<summary>More filters</summary>" in more


def test_more_filters_says_how_many_of_its_filters_are_in_use(client_for, manager, data):
    body = client_for(manager).get(
        DASHBOARD, {"paid_from": "2026-03-01", "paid_to": "2026-03-31", "vendor": "sandbox", "q": "ann"}
    ).content.decode()

    assert "<summary>More filters (2 in use)</summary>" in body


def test_each_active_filter_is_a_chip_linking_to_the_same_view_without_it(client_for, manager, data, other_location):
    params = {
        "q": "lee", "created_from": "2026-03-01", "created_to": "2026-03-31", "status": ["succeeded", "refunded"],
        "location": [str(other_location.pk)], "amount_min": "30", "has_errors": "false", "older_than": "1-2",
    }

    body = client_for(manager).get(DASHBOARD, params).content.decode()

    base = (f"created_from=2026-03-01&created_to=2026-03-31&amount_min=30&status=succeeded&status=refunded"
            f"&location={other_location.pk}&has_errors=false")
    assert _chips(body) == [
        ("Patient: lee (remove this filter)", f"/?{base}"),
        ("Created: Mar 1, 2026 – Mar 31, 2026 (remove this filter)",
         f"/?q=lee&amount_min=30&status=succeeded&status=refunded&location={other_location.pk}&has_errors=false"),
        ("Amount: from $30.00 (remove this filter)", f"/?q=lee&{base.replace('&amount_min=30', '')}"),
        ("Status: Succeeded (remove this filter)", f"/?q=lee&{base.replace('&status=succeeded', '')}"),
        ("Status: Refunded (remove this filter)", f"/?q=lee&{base.replace('&status=refunded', '')}"),
        ("Location: Northside Clinic (remove this filter)", f"/?q=lee&{base.replace(f'&location={other_location.pk}', '')}"),
        ("Without errors (remove this filter)", f"/?q=lee&{base.replace('&has_errors=false', '')}"),
    ]
    assert '<a class="chips-clear" href="/"' in body


def test_a_chip_swaps_the_whole_main_area_with_htmx_so_the_form_forgets_the_filter_too(client_for, manager, data):
    client = client_for(manager)
    body = client.get(DASHBOARD, {"kind": ["balance"]}).content.decode()

    assert ('<a class="chip" href="/" hx-get="/" hx-target="#main" hx-select="#main" hx-swap="outerHTML" '
            'hx-push-url="true">Kind: Balance') in re.sub(r"\s+", " ", body)
    # htmx asks for #main: the server answers with the whole page, whose form has the filter unticked.
    removed = client.get(DASHBOARD, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="main")
    assert removed.templates[0].name == "transactions/dashboard/list.html"
    assert 'name="kind" value="balance" id="id_kind_1">' in removed.content.decode()
    assert _chips(removed.content.decode()) == []


def test_chips_come_with_the_results_when_htmx_swaps_only_them(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD, {"kind": ["balance"]}, **HTMX).content.decode()

    assert _chips(body) == [("Kind: Balance (remove this filter)", "/")]


def test_a_filter_that_does_not_validate_gets_a_chip_to_remove_it(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD, {"amount_min": "ten", "kind": "copay"}).content.decode()

    assert _chips(body) == [
        ("Kind: Copay (remove this filter)", "/?amount_min=ten"),
        ("Amount from ($): ten (not valid) (remove this filter)", "/?kind=copay"),
    ]
    assert '<a class="chip chip-invalid"' in body


def test_no_filter_no_chips(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD).content.decode()

    assert _chips(body) == [] and 'class="chips"' not in body


def test_the_chart_has_date_ticks_and_each_bar_names_its_days_amount_and_payments(client_for, manager, data):
    body = client_for(manager).get(DASHBOARD, {"created_from": "2026-03-01", "created_to": "2026-03-31"}).content.decode()

    # Places and heights are classes, one per percent (the Content-Security-Policy refuses style="").
    ticks = re.findall(r'<span class="chart-tick([^"]*?) chart-x-(\d+)">([^<]+)</span>', body)
    assert ticks == [
        ("", "2", "Mar 1, 2026"),
        (" chart-tick-minor", "27", "Mar 9, 2026"),
        (" chart-tick-minor", "50", "Mar 16, 2026"),
        (" chart-tick-minor", "73", "Mar 23, 2026"),
        ("", "98", "Mar 31, 2026"),
    ]
    bars = re.findall(r'<a class="chart-bar chart-h-(\d+)([^"]*)" href="([^"]*)"[^>]*aria-label="([^"]+)"></a>', body)
    assert [(end, unescape(href), height, label) for height, end, href, label in bars] == [
        ("", "/?created_from=2026-03-01&created_to=2026-03-31&paid_from=2026-03-01&paid_to=2026-03-01", "100",
         "Mar 1, 2026: $50.00, 1 payment"),
        ("", "/?created_from=2026-03-01&created_to=2026-03-31&paid_from=2026-03-15&paid_to=2026-03-15", "100",
         "Mar 15, 2026: $50.01, 1 payment"),
        (" chart-tip-end", "/?created_from=2026-03-01&created_to=2026-03-31&paid_from=2026-03-22&paid_to=2026-03-22",
         "60", "Mar 22, 2026: $30.00, 1 payment"),
    ]
    assert "style=" not in body
    assert body.count('class="chart-slot"') == 31


def test_a_bar_opens_the_transactions_paid_on_its_day(client_for, manager, data):
    response = client_for(manager).get(DASHBOARD, {"paid_from": "2026-03-22", "paid_to": "2026-03-22"})

    assert [t.billing_item for t in response.context["page"].object_list] == ["Office visit copay"]
    assert response.context["summary"].collected_cents == 3000


def test_the_totals_and_the_export_come_before_the_chart_and_the_rows(client_for, manager, data):
    body = client_for(manager).get(reverse("transactions:dashboard")).content.decode()

    order = [body.index(marker) for marker in ('class="totals"', 'class="export-form"', 'class="card chart"', "<tbody>")]
    assert order == sorted(order)
