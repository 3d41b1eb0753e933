"""One format for dates and one for date-times, in the organization's time zone and the reader's language."""

import datetime as dt
import zoneinfo

import pytest
from django.template import Context, Template
from django.utils import dateformat, timezone, translation

from lumapay.dates import DATETIME_FORMATS, date_formatter, format_date, format_datetime

# 09:18 UTC: 4:18 in New York (EST), 1:18 in Los Angeles (PST), 10:18 in Madrid (CET).
MOMENT = dt.datetime(2026, 11, 29, 9, 18, tzinfo=dt.UTC)
SUMMER = dt.datetime(2026, 7, 1, 15, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "language, date_text, datetime_text",
    [
        ("en", "Nov 29, 2026", "Nov 29, 2026, 4:18 AM EST"),
        ("es", "29 nov 2026", "29 nov 2026, 04:18 EST"),
    ],
)
def test_a_date_and_a_date_time_read_the_same_everywhere_in_each_language(language, date_text, datetime_text):
    with translation.override(language), timezone.override("America/New_York"):
        assert format_date(MOMENT) == date_text
        assert format_date(dt.date(2026, 11, 29)) == date_text
        assert format_datetime(MOMENT) == datetime_text


@pytest.mark.parametrize(
    "language, zone, expected",
    [
        ("en", "America/Los_Angeles", "Nov 29, 2026, 1:18 AM PST"),
        ("en", "Europe/Madrid", "Nov 29, 2026, 10:18 AM CET"),
        ("es", "Europe/Madrid", "29 nov 2026, 10:18 CET"),
        ("en", "Pacific/Auckland", "Nov 29, 2026, 10:18 PM NZDT"),
    ],
)
def test_a_date_time_is_in_the_zone_given_not_the_servers(language, zone, expected):
    with translation.override(language), timezone.override("America/New_York"):
        assert format_datetime(MOMENT, zone) == expected
        assert format_datetime(MOMENT, zoneinfo.ZoneInfo(zone)) == expected


def test_a_date_is_the_day_it_is_in_the_organizations_zone():
    late_evening_in_los_angeles = dt.datetime(2026, 12, 30, 6, 30, tzinfo=dt.UTC)

    assert format_date(late_evening_in_los_angeles, "America/Los_Angeles") == "Dec 29, 2026"
    assert format_date(late_evening_in_los_angeles, "Europe/Madrid") == "Dec 30, 2026"


def test_an_organization_names_its_zone():
    class Organization:
        timezone = "America/Chicago"

    assert format_datetime(SUMMER, Organization()) == "Jul 1, 2026, 10:05 AM CDT"


def test_spanish_months_are_spanish():
    with translation.override("es"):
        assert format_date(dt.date(2026, 1, 5)) == "5 ene 2026"
        assert format_date(dt.date(2026, 12, 24)) == "24 dic 2026"


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_date_formatter_writes_what_format_date_writes_in_the_language_active_when_made(language):
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(0, 400, 13)]
    with translation.override(language):
        day_text = date_formatter()
        expected = [format_date(day) for day in days]
    assert [day_text(day) for day in days] == expected


def test_nothing_is_written_for_no_date():
    assert format_date(None) == ""
    assert format_datetime(None) == ""


def test_the_template_filters_use_the_active_zone_or_the_one_given():
    template = Template("{% load dates %}{{ at|org_date }} · {{ at|org_datetime }} · {{ at|org_datetime:zone }}")

    with timezone.override("America/Denver"):
        text = template.render(Context({"at": SUMMER, "zone": "Asia/Tokyo"}))

    assert text == "Jul 1, 2026 · Jul 1, 2026, 9:05 AM MDT · Jul 2, 2026, 12:05 AM JST"


def test_the_template_filters_follow_the_language():
    template = Template("{% load dates %}{{ at|org_datetime:'America/Mexico_City' }}")

    with translation.override("es"):
        assert template.render(Context({"at": SUMMER})) == "1 jul 2026, 09:05 CST"


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_date_time_reads_as_djangos_format_of_the_same_pattern_every_quarter_hour_across_a_year(language):
    # given every quarter hour of a day in each month, in New York (DST both ways) and in Kolkata (+05:30)
    zones = [zoneinfo.ZoneInfo("America/New_York"), zoneinfo.ZoneInfo("Asia/Kolkata")]
    moments = [
        dt.datetime(2026, month, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=15 * step)
        for month in range(1, 13)
        for step in range(96)
    ]

    with translation.override(language):
        for zone in zones:
            for moment in moments:
                # then LumaPay's text is exactly what Django's own formatter writes for the pattern,
                # except in the hour a DST change repeats, where Django leaves the zone out and
                # LumaPay names the one that tells the two 1:30s apart ("1:30 AM EDT", "1:30 AM EST")
                local = moment.astimezone(zone)
                expected = dateformat.format(local, DATETIME_FORMATS[language])
                if expected.endswith(" "):
                    expected += local.tzname()
                assert format_datetime(moment, zone) == expected
