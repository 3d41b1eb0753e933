"""Two browser tabs paying one Sandbox request at the same moment, twelve times over, against real
PostgreSQL in real threads (each thread its own connection, as each gunicorn worker has).

Each round both tabs press "Pay", both submit the card on the hosted page and both open the
confirmation, while the Sandbox's event reaches the webhook and the receipt goes out. The row locks
(the payment request, the transaction, the receipt row) must take only those rows and in one
order, and no lock may be held while a PDF is rendered or a message sent: otherwise inserts wait on
foreign-key checks of the organization and patient rows and PostgreSQL kills one side as a deadlock
(before the fix, receipts were lost that way).
"""

import logging
import threading

import pytest
from django.core import mail
from django.db import connections
from django.test import Client

from lumapay.models import AuditEvent
from transactions.enums import TransactionEventKind as Kind
from transactions.models import SandboxCharge, TransactionEvent

from .pay_support import SUCCEEDS, card_fields, pay_url, path_of, payment_request_make, verified

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

ROUNDS = 12


def _tab_pays(client: Client, payment_request) -> str:
    """One tab's way from "Pay" to the confirmation; what the confirmation said."""
    response = client.post(pay_url("checkout", payment_request))
    if response.status_code != 302:
        return f"checkout answered {response.status_code}"
    hosted = path_of(response["Location"])
    if hosted.startswith("/sandbox/"):
        client.post(hosted, card_fields(SUCCEEDS))
    done = client.get(pay_url("done", payment_request))
    return "paid" if "Payment received" in done.content.decode() else f"done answered {done.status_code}"


def _both_tabs_at_once(tabs: list[Client], payment_request) -> list:
    barrier = threading.Barrier(len(tabs))
    results: list = [None] * len(tabs)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = _tab_pays(tabs[index], payment_request)
        except BaseException as error:  # reported by the test, with the tab's index
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(tabs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a tab never finished"
    return results


def test_two_tabs_paying_one_sandbox_request_twelve_times_charge_once_each_and_send_twelve_receipts(
    organization, caplog
):
    caplog.set_level(logging.WARNING)
    requests = [payment_request_make(organization=organization, amount_cents=4500 + round_) for round_ in range(ROUNDS)]

    outcomes = []
    for payment_request in requests:
        tabs = [verified(Client(), payment_request) for _tab in range(2)]
        outcomes.append(_both_tabs_at_once(tabs, payment_request))

    problems = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    problems += [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
    assert [message for message in problems if "deadlock" in message.lower()] == []
    assert outcomes == [["paid", "paid"]] * ROUNDS, problems
    for payment_request in requests:
        assert SandboxCharge.objects.filter(session__client_reference__isnull=False, is_paid=True,
                                            amount_cents=payment_request.amount_cents).count() == 1
        assert TransactionEvent.objects.filter(
            transaction__payment_request=payment_request, kind=Kind.CHARGE_SUCCEEDED
        ).count() == 1
    assert AuditEvent.objects.filter(action="receipt.sent").count() == ROUNDS
    assert sorted(message.to[0] for message in mail.outbox) == sorted(r.patient.email for r in requests)
    assert problems == []
