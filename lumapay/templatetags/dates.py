"""``{{ value|org_date }}`` and ``{{ value|org_datetime }}``: see lumapay/dates.py.

Without an argument they use the active time zone, which is the current organization's on staff
pages (org_profile.middleware). Pages written for one organization outside a staff request (the
pay pages, e-mails, receipts) pass it: ``{{ paid_at|org_datetime:clinic_timezone }}``.
"""

from django import template

from lumapay.dates import format_date, format_datetime

register = template.Library()


@register.filter
def org_date(value, zone=None):
    return format_date(value, zone)


@register.filter
def org_datetime(value, zone=None):
    return format_datetime(value, zone)
