"""Mobile phone numbers in E.164 (+12175550100): the one form SMS providers accept.

Staff type numbers the way they read them off a chart: "(217) 555-0100", "217.555.0100",
"1 217 555 0100". Ten digits, or eleven starting with 1, are North American (NANP) numbers;
anything else must be written in international form, starting with "+".
"""

from __future__ import annotations

import re

from lumapay.errors import ApplicationError

# What people put between digits; anything else (letters, "#", "ext") is not a phone number.
_SEPARATORS = re.compile(r"[\s().\-/]")
_NANP_NATIONAL = re.compile(r"[2-9]\d{2}[2-9]\d{6}")

NOT_A_PHONE_NUMBER = (
    "“{text}” is not a mobile phone number. Enter a US number such as (217) 555-0100, "
    "or an international number starting with +, such as +34 612 345 678."
)


class PhoneNumberError(ApplicationError):
    pass


def mobile_phone_normalize(text: str) -> str:
    """The number in E.164, "" for an empty entry, or PhoneNumberError saying what is wrong."""
    stripped = (text or "").strip()
    if not stripped:
        return ""
    compact = _SEPARATORS.sub("", stripped)
    international = compact.startswith("+")
    digits = compact[1:] if international else compact
    if not digits.isascii() or not digits.isdigit():
        raise PhoneNumberError(NOT_A_PHONE_NUMBER.format(text=stripped), extra={"field": "mobile_phone"})

    if not international:
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) != 10:
            raise PhoneNumberError(
                f"“{stripped}” has {len(digits)} digits; a US number has 10, such as (217) 555-0100. "
                "Write other countries' numbers starting with +.",
                extra={"field": "mobile_phone"},
            )
        digits = "1" + digits

    # E.164: a country code that does not start with 0, at most 15 digits in all.
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        raise PhoneNumberError(NOT_A_PHONE_NUMBER.format(text=stripped), extra={"field": "mobile_phone"})
    if digits.startswith("1") and len(digits) != 11:
        raise PhoneNumberError(
            f"“{stripped}” does not have 10 digits after +1, as US and Canadian numbers do.",
            extra={"field": "mobile_phone"},
        )
    if digits.startswith("1") and not _NANP_NATIONAL.fullmatch(digits[1:]):
        raise PhoneNumberError(
            f"“{stripped}” is not a valid US or Canadian number: the area code and the exchange "
            "cannot start with 0 or 1.",
            extra={"field": "mobile_phone"},
        )
    return "+" + digits


def phone_digits(text: str) -> str:
    """Only the digits of what was typed (for searching stored E.164 numbers)."""
    return re.sub(r"\D", "", text or "")
