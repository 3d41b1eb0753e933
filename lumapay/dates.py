"""The one way LumaPay writes a date and the one way it writes a date and time.

Both are in the organization's time zone (a date-time names its zone: "EST") and in the
reader's language: "Nov 29, 2026" and "Nov 29, 2026, 4:18 AM EST" in English, "29 nov 2026" and
"29 nov 2026, 04:18 EST" in Spanish. Templates use the ``org_date`` / ``org_datetime`` filters
(lumapay/templatetags/dates.py); Python code that writes a date into text calls these functions.
Exports are the exception: they hold real date cells.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

from django.utils import dateformat, timezone, translation

DATE_FORMATS = {"en": "M j, Y", "es": "j b Y"}
DATETIME_FORMATS = {"en": "M j, Y, g:i A T", "es": "j b Y, H:i T"}
DEFAULT_LANGUAGE = "en"


def zone_of(value) -> dt.tzinfo | None:
    """A time zone from what a caller holds: a tzinfo, a zone name, or an object with a
    ``timezone`` name (an Organization). ``None`` means the active time zone."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.tzinfo):
        return value
    name = value if isinstance(value, str) else getattr(value, "timezone", None)
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def format_date(value, zone=None) -> str:
    """A date ("Nov 29, 2026"); a date-time is first turned into the day it is in ``zone``."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.datetime):
        value = _local(value, zone).date()
    return _date_text(_language(), value)


def date_formatter():
    """``format_date`` for dates, in the language active now, looked up once: for a caller that
    writes a hundred dates in a row (the dashboard's chart)."""
    language = _language()
    return lambda day: _date_text(language, day)


def format_datetime(value, zone=None) -> str:
    """A date and time with its zone ("Nov 29, 2026, 4:18 AM EST")."""
    if value is None or value == "":
        return ""
    if not isinstance(value, dt.datetime):
        return format_date(value, zone)
    local = _local(value, zone)
    language = _language()
    if timezone.is_naive(local):
        return dateformat.format(local, DATETIME_FORMATS[language])
    # DATETIME_FORMATS written from the cached day and time texts (a dashboard writes 25 a page;
    # Django's format parser costs ~30 µs each); a test holds them equal to dateformat's.
    return f"{_date_text(language, local.date())}, {_time_text(language, local.hour, local.minute)} {local.tzname()}"


def _local(value: dt.datetime, zone) -> dt.datetime:
    if timezone.is_naive(value):
        return value
    return timezone.localtime(value, zone_of(zone) or timezone.get_current_timezone())


def _language() -> str:
    code = (translation.get_language() or DEFAULT_LANGUAGE).split("-")[0].lower()
    return code if code in DATE_FORMATS else DEFAULT_LANGUAGE


@lru_cache(maxsize=4096)
def _date_text(language: str, day: dt.date) -> str:
    # Cached: a chart writes up to a hundred days, a dashboard the same few, over and over.
    with translation.override(language):
        return dateformat.format(day, DATE_FORMATS[language])


@lru_cache(maxsize=2048)
def _time_text(language: str, hour: int, minute: int) -> str:
    """The time part of DATETIME_FORMATS: "4:18 AM" (``g:i A``) in English, "04:18" (``H:i``) in Spanish."""
    if language == "en":
        with translation.override(language):
            return dateformat.format(dt.time(hour, minute), "g:i A")
    return f"{hour:02d}:{minute:02d}"
