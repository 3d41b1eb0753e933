"""The Stripe objects the tests build (tests/stripe_builders.py) have the shape of Stripe's own.

Stripe publishes an example of every API object (stripe/openapi, fixtures3.json; see
../shared/fixtures/SOURCES.md). Each builder's object is compared with Stripe's example, field by
field, at every depth: the same fields, none missing and none invented, and where both sides have a
value, a value of the same JSON type. ``null`` matches anything: Stripe's examples fill some
nullable fields that a real object leaves empty, and the reverse.

This is the one test that reads Stripe's file, in place (never copied into the project). It is
skipped when the file is absent, as on a fresh clone with nothing beside it; set
LUMAPAY_STRIPE_FIXTURES to its path to run it from elsewhere.
"""

import json
import os
from pathlib import Path

import pytest

from ..stripe_support import every_kind_lines
from ..stripe_builders import (
    account_build,
    account_link_build,
    balance_build,
    balance_transaction_build,
    bank_account_build,
    charge_build,
    checkout_session_build,
    dispute_build,
    event_build,
    payment_intent_build,
    payout_build,
    refund_build,
)

BASE_DIR = Path(__file__).resolve().parents[2]
FIXTURES_PATH = Path(
    os.environ.get("LUMAPAY_STRIPE_FIXTURES") or BASE_DIR.parent / "shared" / "fixtures" / "stripe" / "fixtures3.json"
)

BUILDERS = {
    "account": account_build,
    "account_link": account_link_build,
    "balance": balance_build,
    "balance_transaction": balance_transaction_build,
    "bank_account": bank_account_build,
    "charge": charge_build,
    "checkout.session": checkout_session_build,
    "dispute": dispute_build,
    "event": event_build,
    "payment_intent": payment_intent_build,
    "payout": payout_build,
    "refund": refund_build,
}

# Fields whose contents are free-form (metadata) or another object altogether (an event's object:
# Stripe's example carries a plan, ours a PaymentIntent, checked on its own above).
FREE_FORM = {"metadata", "data.object", "payment_method_options", "amount_details.tip", "fraud_details"}


def json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}[type(value)]


def differences(ours, stripes, path: str = "") -> list[str]:
    """How ``ours`` differs in shape from ``stripes``: one line per field."""
    if path.removeprefix(".") in FREE_FORM or ours is None or stripes is None:
        return []
    where = path.removeprefix(".") or "(the object)"
    if json_type(ours) != json_type(stripes):
        return [f"{where}: {json_type(ours)} here, {json_type(stripes)} at Stripe"]
    if isinstance(ours, dict):
        found = [f"{path.removeprefix('.')}.{key}".removeprefix(".") + ": missing" for key in sorted(set(stripes) - set(ours))]
        found += [f"{path.removeprefix('.')}.{key}".removeprefix(".") + ": not a Stripe field" for key in sorted(set(ours) - set(stripes))]
        for key in sorted(set(ours) & set(stripes)):
            found += differences(ours[key], stripes[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and ours and stripes:
        return differences(ours[0], stripes[0], f"{path}[0]")
    return []


def stripes_examples() -> dict:
    if not FIXTURES_PATH.exists():
        pytest.skip(
            f"Stripe's example objects are not at {FIXTURES_PATH} (../shared/fixtures/stripe/fixtures3.json beside "
            "the checkout, or LUMAPAY_STRIPE_FIXTURES): the builders' shapes are checked where they are."
        )
    return json.loads(FIXTURES_PATH.read_text())["resources"]


def test_every_builder_has_the_shape_of_stripes_own_example():
    examples = stripes_examples()

    found = {name: differences(build(), examples[name]) for name, build in BUILDERS.items()}

    assert {name: build()["object"] for name, build in BUILDERS.items()} == {name: name for name in BUILDERS}
    assert found == {name: [] for name in BUILDERS}


REFUND_ONLY_WHEN_SET = {"failure_reason", "pending_reason"}


def test_a_payouts_lines_and_their_expanded_sources_have_the_shape_of_stripes_own():
    """The balance transactions ``FakePayouts`` lists for a payout (tests/stripe_support.py), one
    of every kind, and the charge, refund, dispute or payout each one's source expands to."""
    examples = stripes_examples()

    found = {}
    for index, line in enumerate(every_kind_lines()):
        source = line["source"]
        collapsed = {**line, "source": source["id"] if isinstance(source, dict) else source}
        found[f"{index}:{line['type']}"] = differences(collapsed, examples["balance_transaction"])
        if isinstance(source, dict):
            # A failed refund's failure_reason: Stripe sends it only on the refunds it concerns
            # (refund_build), and its example is a refund that succeeded.
            source = {key: value for key, value in source.items() if key not in REFUND_ONLY_WHEN_SET}
            found[f"{index}:{line['type']}.source"] = differences(source, examples[source["object"]])

    assert found == {name: [] for name in found}


def test_the_comparison_catches_a_missing_field_an_invented_one_and_a_wrong_type():
    stripes = {"id": "x", "amount": 1, "card": {"brand": "visa", "last4": "4242"}, "metadata": {"a": "b"}}
    ours = {"id": "x", "amount": "1", "card": {"brand": "visa", "cvc": "123"}, "metadata": {}}

    assert differences(ours, stripes) == [
        "amount: string here, integer at Stripe",
        "card.last4: missing",
        "card.cvc: not a Stripe field",
    ]


def test_a_builder_refuses_a_field_stripe_does_not_send():
    with pytest.raises(KeyError, match="a Stripe charge has no field amount_dollars"):
        charge_build(amount_dollars=10)
