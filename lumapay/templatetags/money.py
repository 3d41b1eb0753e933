from django import template

from lumapay.money import format_cents

register = template.Library()


@register.filter
def cents(value, currency="usd"):
    """{{ amount_cents|cents }} → $1,234.56"""
    return format_cents(value, currency or "usd")
