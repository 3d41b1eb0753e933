"""Money is integer cents with a currency beside it; these helpers are the only conversions."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import ApplicationError


class AmountError(ApplicationError):
    pass


def cents_from_text(text: str, *, max_cents: int) -> int:
    """Parse what a person typed ("45", "45.5", "$1,200.00") into cents, or say what is wrong."""
    cleaned = (text or "").strip().replace("$", "").replace(",", "")
    if not cleaned:
        raise AmountError("Enter an amount.")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise AmountError(f"“{text}” is not an amount. Enter dollars and cents, such as 45.00.")
    if not value.is_finite():
        raise AmountError(f"“{text}” is not an amount. Enter dollars and cents, such as 45.00.")
    if value.as_tuple().exponent < -2:
        raise AmountError("Amounts have at most two decimal places (cents).")
    cents = int(value * 100)
    if cents <= 0:
        raise AmountError("The amount must be more than $0.00.")
    if cents > max_cents:
        raise AmountError(f"The amount cannot be more than {format_cents(max_cents)}.")
    return cents


MINUS_SIGN = "\u2212"  # "−": the typographic minus, the same width as the digits, read as "minus"


def format_cents(cents: int | None, currency: str = "usd") -> str:
    """"$1,234.56"; a negative amount with the minus sign (U+2212), never a hyphen: "−$1.61".

    Exports write numbers, not this text."""
    if cents is None:
        return ""
    sign = MINUS_SIGN if cents < 0 else ""
    cents = abs(int(cents))
    symbol = "$" if currency.lower() == "usd" else f"{currency.upper()} "
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"
