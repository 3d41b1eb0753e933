import pytest
from django.template import Context, Template

from lumapay.money import AmountError, cents_from_text, format_cents

MAX = 100_000_00


@pytest.mark.parametrize(
    "text, cents",
    [("45", 4500), ("45.5", 4550), ("$1,200.00", 120000), (" 0.01 ", 1), ("100000", MAX)],
)
def test_cents_from_text_reads_what_people_type(text, cents):
    assert cents_from_text(text, max_cents=MAX) == cents


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Enter an amount."),
        ("0", "The amount must be more than $0.00."),
        ("-5", "The amount must be more than $0.00."),
        ("100000.01", "The amount cannot be more than $100,000.00."),
        ("ten dollars", "“ten dollars” is not an amount. Enter dollars and cents, such as 45.00."),
        ("NaN", "“NaN” is not an amount. Enter dollars and cents, such as 45.00."),
        ("1.234", "Amounts have at most two decimal places (cents)."),
    ],
)
def test_cents_from_text_says_what_is_wrong(text, message):
    with pytest.raises(AmountError) as error:
        cents_from_text(text, max_cents=MAX)
    assert error.value.message == message


def test_format_cents():
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(-5) == "\u2212$0.05"
    assert format_cents(-161) == "−$1.61"


def test_an_amount_taken_off_is_written_with_the_minus_sign():
    template = Template("{% load money %}{{ fee|minus_cents }} {{ refund|minus_cents:'usd' }} {{ nothing|minus_cents }}")

    text = template.render(Context({"fee": 161, "refund": -2250, "nothing": None}))

    assert text == "−$1.61 −$22.50 "
