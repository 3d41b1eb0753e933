from django import template

from lumapay.money import format_cents

register = template.Library()


@register.filter
def cents(value, currency="usd"):
    """{{ amount_cents|cents }} → $1,234.56"""
    return format_cents(value, currency or "usd")


@register.filter
def minus_cents(value, currency="usd"):
    """{{ fee_cents|minus_cents }} → −$1.61: an amount taken off (a fee, a refund), with the minus sign."""
    if value is None or value == "":
        return ""
    return format_cents(-abs(int(value)), currency or "usd")
