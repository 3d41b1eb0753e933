"""tests/waiting.py: wait_until waits on a condition and says what it waited for."""

import time

import pytest

from .waiting import WaitTimeout, wait_until


def test_returns_what_the_predicate_gave_once_it_is_true():
    answers = iter([None, 0, "", "stored"])

    assert wait_until(lambda: next(answers), timeout_seconds=5, interval_seconds=0.001) == "stored"


def test_does_not_wait_when_the_condition_already_holds():
    started = time.monotonic()

    assert wait_until(lambda: True, timeout_seconds=5, interval_seconds=5) is True
    assert time.monotonic() - started < 1


def test_a_condition_that_never_comes_true_fails_naming_it():
    calls = []

    with pytest.raises(WaitTimeout) as raised:
        wait_until(lambda: calls.append(1), timeout_seconds=0.05, interval_seconds=0.01, describe="the event is stored")

    assert str(raised.value) == "waited 0.05 s until the event is stored; it never came true"
    assert len(calls) >= 2  # tried again before giving up
    assert isinstance(raised.value, AssertionError)


def test_the_description_may_be_computed_at_the_deadline():
    state = {"status": "open"}

    with pytest.raises(WaitTimeout, match=r"^waited 0.01 s until the request is expired \(it is open\)"):
        wait_until(
            lambda: state["status"] == "expired",
            timeout_seconds=0.01,
            interval_seconds=0.005,
            describe=lambda: f"the request is expired (it is {state['status']})",
        )
