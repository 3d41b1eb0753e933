import pytest

from ehr_sync.phone_numbers import PhoneNumberError, mobile_phone_normalize


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("(217) 555-0100", "+12175550100"),
        ("217-555-0100", "+12175550100"),
        ("217.555.0100", "+12175550100"),
        ("2175550100", "+12175550100"),
        ("1 217 555 0100", "+12175550100"),
        ("+1 (217) 555-0100", "+12175550100"),
        ("+12175550100", "+12175550100"),
        ("+34 612 345 678", "+34612345678"),
        ("  ", ""),
        ("", ""),
    ],
)
def test_mobile_phone_normalize_stores_e164(typed, stored):
    assert mobile_phone_normalize(typed) == stored


@pytest.mark.parametrize(
    "typed, message",
    [
        (
            "call me",
            "“call me” is not a mobile phone number. Enter a US number such as (217) 555-0100, "
            "or an international number starting with +, such as +34 612 345 678.",
        ),
        (
            "217-555-010x",
            "“217-555-010x” is not a mobile phone number. Enter a US number such as (217) 555-0100, "
            "or an international number starting with +, such as +34 612 345 678.",
        ),
        (
            "555-0100",
            "“555-0100” has 7 digits; a US number has 10, such as (217) 555-0100. "
            "Write other countries' numbers starting with +.",
        ),
        (
            "+0 123 456 789",
            "“+0 123 456 789” is not a mobile phone number. Enter a US number such as (217) 555-0100, "
            "or an international number starting with +, such as +34 612 345 678.",
        ),
        (
            "+1 217 555 01",
            "“+1 217 555 01” does not have 10 digits after +1, as US and Canadian numbers do.",
        ),
        (
            "(117) 555-0100",
            "“(117) 555-0100” is not a valid US or Canadian number: the area code and the exchange "
            "cannot start with 0 or 1.",
        ),
        (
            "+44 1234 5678 9012 3456",
            "“+44 1234 5678 9012 3456” is not a mobile phone number. Enter a US number such as (217) 555-0100, "
            "or an international number starting with +, such as +34 612 345 678.",
        ),
    ],
)
def test_mobile_phone_normalize_says_what_is_wrong(typed, message):
    with pytest.raises(PhoneNumberError) as error:
        mobile_phone_normalize(typed)
    assert error.value.message == message
    assert error.value.extra == {"field": "mobile_phone"}
