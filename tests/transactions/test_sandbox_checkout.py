"""The Sandbox processor's hosted checkout page."""

import datetime
import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from transactions.enums import TransactionStatus
from transactions.models import GatewayEvent, SandboxCharge, SandboxCheckoutSession, Transaction
from transactions.sandbox import processor as sandbox_processor
from transactions.sandbox.enums import SandboxSessionStatus

from .pay_support import AUTHENTICATE, SUCCEEDS, card_fields, checkout_path, pay_url, payment_request_make, text, verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_path(client, organization):
    payment_request = payment_request_make(organization=organization, amount_cents=12345)
    verified(client, payment_request)
    return checkout_path(client, payment_request)


def _card_form_target(response, page_path: str) -> str:
    """Where a browser sends the card form of this page: its action, else the page's own address."""
    form = re.search(r'<form method="post"(?: action="([^"]*)")? novalidate>', text(response))
    return form.group(1) or page_path


class _Landmarks(HTMLParser):
    """The page's h1 headings, and the elements directly in <body> (what axe's ``region`` rule
    wants inside a landmark)."""

    def __init__(self):
        super().__init__()
        self.depth, self.in_body, self.body_children, self.h1_count = 0, False, [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "h1":
            self.h1_count += 1
        if tag == "body":
            self.in_body, self.depth = True, 0
            return
        if self.in_body:
            if self.depth == 0:
                self.body_children.append((tag, dict(attrs).get("class", "")))
            if tag not in ("input", "br", "img", "meta", "link"):
                self.depth += 1

    def handle_endtag(self, tag):
        if tag == "body":
            self.in_body = False
        elif self.in_body and tag not in ("input", "br", "img", "meta", "link"):
            self.depth -= 1


def _landmarks(response) -> _Landmarks:
    parser = _Landmarks()
    parser.feed(text(response))
    return parser


def _nothing_charged():
    return (SandboxCharge.objects.count(), GatewayEvent.objects.count(), Transaction.objects.get().status)


def test_the_page_says_sandbox_and_shows_merchant_amount_card_form_and_test_cards(client, sandbox_path):
    response = client.get(sandbox_path)

    page = text(response)
    assert response.status_code == 200
    assert "SANDBOX — test payments only" in page
    assert "Pay <strong>Riverside Family Medicine</strong>" in page
    assert "$123.45" in page
    for attribute in ('autocomplete="cc-number"', 'autocomplete="cc-exp-month"', 'autocomplete="cc-exp-year"', 'autocomplete="cc-csc"'):
        assert attribute in page
    for label in ('<label for="card-number">Card number</label>', '<label for="card-cvc">CVC</label>'):
        assert label in page
    for card in ("4242 4242 4242 4242", "4000 0000 0000 0002", "4000 0000 0000 9995", "4000 0025 0000 3155", "3782 822463 10005"):
        assert card in page
    assert "Declined: insufficient funds" in page
    session = SandboxCheckoutSession.objects.get()
    assert f'href="{session.cancel_url}"' in page and "Cancel and return to Riverside Family Medicine" in page


@pytest.mark.parametrize(
    "fields, message",
    [
        (card_fields("4242 4242 4242 4241"), "Your card number is incorrect."),
        (card_fields("5105 1051 0510 5100"), "This is the Sandbox: use a test card such as 4242 4242 4242 4242."),
        (card_fields(SUCCEEDS, cvc="12"), "Your card&#x27;s security code is incomplete."),
        ({**card_fields(SUCCEEDS), "expiry_month": "13"}, "Your card&#x27;s expiration date is incomplete."),
        ({**card_fields(SUCCEEDS), "expiry_year": "2001"}, "Your card&#x27;s expiration date is in the past."),
    ],
)
def test_a_card_entry_error_is_shown_on_the_form_and_nothing_is_charged(client, sandbox_path, fields, message):
    response = client.post(sandbox_path, fields)

    assert response.status_code == 400
    assert message in text(response)
    assert 'aria-invalid="true" aria-describedby="card-error"' in text(response)
    assert _nothing_charged() == (0, 0, "pending")
    assert SandboxCheckoutSession.objects.get().status == SandboxSessionStatus.OPEN


def test_missing_fields_are_named(client, sandbox_path):
    response = client.post(sandbox_path, {"number": "", "expiry_month": "", "expiry_year": "", "cvc": ""})

    page = text(response)
    assert response.status_code == 400
    for message in ("Enter a card number.", "Enter the month.", "Enter the year.", "Enter the CVC."):
        assert message in page
    assert 'aria-describedby="number-errors"' in page
    assert _nothing_charged() == (0, 0, "pending")


def test_the_form_needs_its_csrf_token(organization, sandbox_path):
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(sandbox_path, card_fields(SUCCEEDS))

    assert response.status_code == 403
    assert SandboxCharge.objects.count() == 0


def test_a_double_tap_on_pay_lands_on_the_confirmation_with_the_receipt(
    client, organization, django_capture_on_commit_callbacks
):
    payment_request = payment_request_make(organization=organization, amount_cents=12345)
    verified(client, payment_request)
    sandbox_path = checkout_path(client, payment_request)

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(sandbox_path, card_fields(SUCCEEDS))
        second = client.post(sandbox_path, card_fields(SUCCEEDS), follow=True)

    assert first.status_code == 302
    assert second.redirect_chain == [(first["Location"], 302)]
    page = text(second)
    assert second.status_code == 200
    assert "Payment received" in page and "$123.45" in page and "Visa •••• 4242" in page
    assert pay_url("receipt", payment_request) in page
    assert "already paid" not in page
    assert SandboxCharge.objects.count() == 1
    assert Transaction.objects.get().charged_cents == 12345


def test_a_paid_checkout_is_never_charged_again_and_its_page_goes_to_the_confirmation(
    client, sandbox_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        paid = client.post(sandbox_path, card_fields(SUCCEEDS))

    again = client.get(sandbox_path)

    session = SandboxCheckoutSession.objects.get()
    assert (again.status_code, again["Location"]) == (302, session.success_url)
    assert paid["Location"] == session.success_url
    assert SandboxCharge.objects.count() == 1


def test_a_tap_that_raced_the_payment_lands_on_the_confirmation(
    client, sandbox_path, monkeypatch, django_capture_on_commit_callbacks
):
    # given the second tap read the checkout while the first was still paying it
    session = SandboxCheckoutSession.objects.get()
    stale = SandboxCheckoutSession.objects.get(pk=session.pk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(sandbox_path, card_fields(SUCCEEDS))
    monkeypatch.setattr(sandbox_processor, "session_get", lambda session_id: stale)

    # when it reaches the processor
    response = client.post(sandbox_path, card_fields(SUCCEEDS))

    # then the patient goes to the confirmation and nothing more is charged
    assert (response.status_code, response["Location"]) == (302, session.success_url)
    assert SandboxCharge.objects.count() == 1


def test_an_expired_checkout_sends_the_patient_back(client, sandbox_path):
    SandboxCheckoutSession.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = client.post(sandbox_path, card_fields(SUCCEEDS))

    assert "This checkout has expired. Go back to the payment link to start again." in text(response)
    assert SandboxCharge.objects.count() == 0


def test_an_unknown_checkout_is_a_404(client, db):
    assert client.get("/sandbox/checkout/cs_sbx_nope/").status_code == 404
    assert client.get("/sandbox/checkout/cs_sbx_nope/authenticate/").status_code == 404


def test_the_authentication_page_without_a_pending_card_goes_back_to_the_form(client, sandbox_path):
    response = client.get(f"{sandbox_path}authenticate/")

    assert response["Location"] == sandbox_path
    assert client.post(f"{sandbox_path}authenticate/", {"result": "pass"})["Location"] == sandbox_path
    assert SandboxCharge.objects.count() == 0


def test_after_a_failed_authentication_the_patient_sees_why_and_the_next_card_is_charged(
    client, sandbox_path, django_capture_on_commit_callbacks
):
    authenticate_path = f"{sandbox_path}authenticate/"
    client.post(sandbox_path, card_fields(AUTHENTICATE))
    with django_capture_on_commit_callbacks(execute=True):
        failed = client.post(authenticate_path, {"result": "fail"})

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_card_form_target(failed, authenticate_path), card_fields(SUCCEEDS))

    assert failed.status_code == 402
    assert "We could not authenticate your payment method. Choose another payment method and try again." in text(failed)
    assert "Nothing was charged. Try another card." in text(failed)
    session = SandboxCheckoutSession.objects.get()
    assert (response.status_code, response["Location"]) == (302, session.success_url)
    assert session.status == SandboxSessionStatus.COMPLETE
    assert list(SandboxCharge.objects.order_by("created_at").values_list("card_last4", "is_paid")) == [
        ("3155", False),
        ("4242", True),
    ]
    assert list(GatewayEvent.objects.order_by("id").values_list("event_type", flat=True)) == [
        "charge.failed",
        "charge.succeeded",
    ]
    assert Transaction.objects.get().status == TransactionStatus.SUCCEEDED


def test_the_checkout_and_authentication_pages_have_one_h1_and_everything_in_landmarks(client, sandbox_path):
    checkout_page = client.get(sandbox_path)
    client.post(sandbox_path, card_fields(AUTHENTICATE))
    authenticate_page = client.get(f"{sandbox_path}authenticate/")

    for response in (checkout_page, authenticate_page):
        landmarks = _landmarks(response)
        assert response.status_code == 200
        assert landmarks.h1_count == 1
        assert landmarks.body_children == [("a", "skip-link"), ("header", ""), ("main", "pay-shell sandbox-shell")]
