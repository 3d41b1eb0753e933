"""The refund form: one amount field, prefilled with what is refundable, a "full amount" shortcut,
the typed amount kept on Back, and a review step that says how much of the payment goes back."""

import re

import pytest
from django.urls import reverse

from transactions.enums import RefundStatus, TransactionStatus
from transactions.models import Refund

from .payments import money_state, paid_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=4500)


def _detail_url(transaction):
    return reverse("transactions:transaction_detail", args=[transaction.pk])


def _refund_url(transaction):
    return reverse("transactions:transaction_refund", args=[transaction.pk])


def _amount_input(body: str) -> str:
    (tag,) = re.findall(r'<input[^>]*name="amount"[^>]*>', body)
    return tag


def _words(body: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_the_form_has_one_amount_field_prefilled_with_what_is_refundable(client_for, manager, payment):
    body = client_for(manager).get(_detail_url(payment)).content.decode()

    assert 'value="45.00"' in _amount_input(body)
    assert 'name="scope"' not in body
    assert "Refund in full" not in body
    assert '<button type="submit" name="fill_full" value="1" class="link-button" formnovalidate>Full amount ($45.00)</button>' in body


def test_readme_step_9_refunds_exactly_half(client_for, manager, payment):
    client = client_for(manager)
    before = money_state(payment)

    review = client.post(_refund_url(payment), {"amount": "22.50", "reason": "Half covered by insurance"})

    assert review.status_code == 200
    assert money_state(payment) == before
    assert '<p class="refund-headline">Refund <strong>$22.50</strong> of $45.00</p>' in review.content.decode()
    confirmed = client.post(_refund_url(payment), review.context["fields"], follow=True)
    assert [str(m) for m in confirmed.context["messages"]] == ["Refunded $22.50 to the patient's card."]
    assert list(Refund.objects.values_list("amount_cents", "status")) == [(2250, RefundStatus.SUCCEEDED)]
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == (TransactionStatus.PARTIALLY_REFUNDED, 2250)
    assert 'value="22.50"' in _amount_input(confirmed.content.decode())


def test_back_keeps_the_typed_amount_and_reason(client_for, manager, payment):
    client = client_for(manager)
    review = client.post(_refund_url(payment), {"amount": "$22.5", "reason": "Half covered by insurance"})

    back = client.post(_refund_url(payment), {**review.context["fields"], "back": "1"})

    body = back.content.decode()
    assert back.status_code == 200
    assert 'value="22.50"' in _amount_input(body)
    assert ">\nHalf covered by insurance</textarea>" in body
    assert Refund.objects.count() == 0


def test_the_full_amount_shortcut_fills_the_field_and_keeps_the_reason(client_for, manager, payment):
    before = money_state(payment)

    response = client_for(manager).post(
        _refund_url(payment), {"amount": "10", "reason": "Visit cancelled", "fill_full": "1"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "transactions/dashboard/detail.html"
    assert 'value="45.00"' in _amount_input(body)
    assert ">\nVisit cancelled</textarea>" in body
    assert money_state(payment) == before


def test_an_empty_amount_is_refused_not_taken_as_in_full(client_for, manager, payment):
    before = money_state(payment)

    response = client_for(manager).post(_refund_url(payment), {"amount": "", "reason": "Overpaid"})

    assert response.status_code == 400
    assert response.context["form"].errors["amount"] == ["Enter an amount."]
    assert money_state(payment) == before
