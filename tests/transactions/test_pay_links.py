"""The pay page's refusals: bad links, expired, cancelled and paid requests, and the date-of-birth
check with its limits per link and per address."""

import datetime

import pytest
from django.utils import timezone

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestStatus
from transactions.links import payment_link_token
from transactions.models import PaymentRequest, SandboxCheckoutSession, Transaction
from transactions.views import pay_page

from .pay_support import SUCCEEDS, card_fields, checkout_path, dob_submit, pay_url, payment_request_make, text, verified

pytestmark = pytest.mark.django_db

WRONG_DOB = datetime.date(1990, 1, 1)


def _request_row(payment_request):
    row = PaymentRequest.objects.get(pk=payment_request.pk)
    return (row.status, row.paid_at, row.failed_verification_count, row.verification_locked_until)


def _actions(payment_request):
    return list(AuditEvent.objects.filter(payment_request=payment_request).order_by("id").values_list("action", flat=True))


# -- bad links ------------------------------------------------------------------------------------


def test_a_malformed_link_is_a_404_naming_no_clinic(client, organization):
    response = client.get("/pay/not-a-token/")

    assert response.status_code == 404
    assert (
        "This payment link is not valid. Check that you copied the whole link, or contact the clinic that sent it."
        in text(response)
    )
    assert "Riverside" not in text(response)


def test_a_link_with_an_altered_signature_is_a_404_naming_the_clinic(client, organization):
    payment_request = payment_request_make(organization=organization)
    token = payment_link_token(payment_request)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")

    for url in (f"/pay/{tampered}/", f"/pay/{tampered}/details/", f"/pay/{token.split(':')[0]}:/done/"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert (
            "This payment link is not valid. Check that you copied the whole link, or contact "
            "Riverside Family Medicine at +12175550100." in text(response)
        )
    assert "$45.00" not in text(response)
    assert AuditEvent.objects.count() == 0


def test_a_link_naming_another_request_with_a_borrowed_signature_is_a_404(client, organization):
    first = payment_request_make(organization=organization)
    second = payment_request_make(organization=organization)
    forged = f"{second.public_id.hex}:{payment_link_token(first).split(':')[1]}"

    response = client.post(f"/pay/{forged}/", {"month": "03", "day": "09", "year": "1984"})

    assert response.status_code == 404
    assert _request_row(second) == ("open", None, 0, None)


# -- expired, cancelled, paid -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, expires_in",
    [(PaymentRequestStatus.OPEN, datetime.timedelta(minutes=-1)), (PaymentRequestStatus.EXPIRED, datetime.timedelta(days=-3))],
)
def test_an_expired_link_says_whom_to_ask_and_the_request_stays_unpaid(client, organization, status, expires_in):
    payment_request = payment_request_make(organization=organization, status=status, expires_at=timezone.now() + expires_in)
    before = _request_row(payment_request)

    response = client.get(pay_url("verify", payment_request))
    posted = dob_submit(client, payment_request)
    details = client.get(pay_url("details", payment_request))
    checkout = client.post(pay_url("checkout", payment_request))

    assert response.status_code == 410
    assert "This link has expired. Ask Riverside Family Medicine at +12175550100 for a new one." in text(response)
    assert 'name="month"' not in text(response)
    assert posted.status_code == 410
    assert details["Location"] == pay_url("verify", payment_request)
    assert checkout["Location"] == pay_url("verify", payment_request)
    assert _request_row(payment_request) == before
    assert Transaction.objects.count() == 0
    assert _actions(payment_request) == ["pay_link.opened"]
    assert AuditEvent.objects.get(action="pay_link.opened").changes == {"state": "expired"}


def test_a_cancelled_request_says_so_clearly(client, organization):
    payment_request = payment_request_make(organization=organization, status=PaymentRequestStatus.CANCELLED)

    response = client.get(pay_url("verify", payment_request))

    assert response.status_code == 410
    page = text(response)
    assert "Riverside Family Medicine cancelled this payment request, so there is nothing to pay here." in page
    assert "If you have questions, call Riverside Family Medicine at +12175550100." in page
    assert 'name="month"' not in page
    assert dob_submit(client, payment_request).status_code == 410
    assert _request_row(payment_request) == ("cancelled", None, 0, None)


def test_an_already_paid_request_shows_its_confirmation_and_never_charges_again(
    client, organization, django_capture_on_commit_callbacks
):
    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(checkout_path(client, payment_request), card_fields(SUCCEEDS))
    client.cookies.clear()  # the patient opens the link again later, on another device

    response = client.get(pay_url("verify", payment_request))
    assert "This request is already paid." in text(response)
    assert "$45.00" not in text(response)
    response = dob_submit(client, payment_request)
    assert response["Location"] == pay_url("done", payment_request)
    done = client.get(pay_url("done", payment_request))
    assert "Payment received" in text(done) and "$45.00" in text(done)
    assert client.get(pay_url("verify", payment_request))["Location"] == pay_url("done", payment_request)
    assert client.get(pay_url("details", payment_request))["Location"] == pay_url("verify", payment_request)
    assert client.post(pay_url("checkout", payment_request))["Location"] == pay_url("done", payment_request)
    assert Transaction.objects.count() == 1
    assert SandboxCheckoutSession.objects.count() == 1


def test_cancelled_page_after_leaving_the_hosted_checkout(client, organization):
    payment_request = payment_request_make(organization=organization)

    response = client.get(pay_url("cancelled", payment_request))

    assert response.status_code == 200
    assert "You left the payment page before paying. Nothing was charged." in text(response)
    assert pay_url("details", payment_request) in text(response)


# -- the date-of-birth check ----------------------------------------------------------------------


def test_pages_past_the_check_send_an_unverified_visitor_back_to_it(client, organization):
    payment_request = payment_request_make(organization=organization)

    for name, method in (("details", client.get), ("done", client.get), ("checkout", client.post)):
        response = method(pay_url(name, payment_request))
        assert response["Location"] == pay_url("verify", payment_request), name
    assert Transaction.objects.count() == 0


def test_a_wrong_date_of_birth_says_so_with_the_attempts_left(client, organization):
    payment_request = payment_request_make(organization=organization)

    response = dob_submit(client, payment_request, WRONG_DOB)

    assert response.status_code == 200
    page = text(response)
    assert "That date of birth does not match our records. You have 4 attempts left." in page
    assert 'aria-describedby="dob-hint dob-error"' in page and 'aria-invalid="true"' in page
    assert _request_row(payment_request) == ("open", None, 1, None)
    failed = AuditEvent.objects.get(action="pay_link.verification_failed")
    assert (failed.actor_type, failed.ip_address, failed.changes) == (
        "patient",
        "127.0.0.1",
        {"failed_verification_count": [0, 1]},
    )
    assert client.get(pay_url("details", payment_request))["Location"] == pay_url("verify", payment_request)


def test_an_incomplete_or_impossible_date_is_not_counted_as_a_try(client, organization):
    payment_request = payment_request_make(organization=organization)
    verify = pay_url("verify", payment_request)

    empty = client.post(verify, {"month": "", "day": "9", "year": "1984"})
    impossible = client.post(verify, {"month": "02", "day": "30", "year": "1984"})
    letters = client.post(verify, {"month": "ab", "day": "9", "year": "84"})

    assert "Enter your date of birth: month, day and year." in text(empty)
    assert "That is not a real date. Check the month, day and year." in text(impossible)
    assert "Enter your date of birth in numbers, for example 03 09 1984." in text(letters)
    assert _request_row(payment_request) == ("open", None, 0, None)
    assert _actions(payment_request) == []


def test_the_link_locks_after_the_allowed_failures_and_unlocks_after_the_wait(client, organization, settings):
    settings.PAY_LINK_MAX_FAILED_DOB_ATTEMPTS = 5
    settings.PAY_LINK_LOCKOUT_MINUTES = 30
    payment_request = payment_request_make(organization=organization)

    messages = [text(dob_submit(client, payment_request, WRONG_DOB)) for _ in range(4)]
    assert "You have 3 attempts left." in messages[1]
    assert "You have 1 attempt left." in messages[3]

    before = timezone.now()
    response = dob_submit(client, payment_request, WRONG_DOB)
    assert response.status_code == 429
    page = text(response)
    assert "For your security, this link is locked for 30 minutes." in page
    assert "Try again later, or call Riverside Family Medicine at +12175550100." in page
    status, paid_at, count, locked_until = _request_row(payment_request)
    assert (status, paid_at, count) == ("open", None, 0)
    assert before + datetime.timedelta(minutes=30) <= locked_until <= timezone.now() + datetime.timedelta(minutes=30)
    locked = AuditEvent.objects.get(action="pay_link.locked")
    assert locked.changes == {
        "verification_locked_until": [None, locked_until.isoformat()],
        "failed_verification_count": [5, 0],
    }
    assert _actions(payment_request) == ["pay_link.verification_failed"] * 5 + ["pay_link.locked"]

    # While locked, even the right date is refused and nothing changes.
    response = dob_submit(client, payment_request)
    assert response.status_code == 429 and "this link is locked" in text(response)
    assert "this link is locked" in text(client.get(pay_url("verify", payment_request)))
    assert _request_row(payment_request) == ("open", None, 0, locked_until)
    assert client.get(pay_url("details", payment_request))["Location"] == pay_url("verify", payment_request)
    refused = AuditEvent.objects.get(action="pay_link.verification_refused")
    assert (refused.changes, refused.ip_address) == ({"reason": "link_locked"}, "127.0.0.1")

    # After the wait the right date passes and the record is cleared.
    lock_ended = timezone.now() - datetime.timedelta(seconds=1)
    PaymentRequest.objects.filter(pk=payment_request.pk).update(verification_locked_until=lock_ended)
    assert dob_submit(client, payment_request)["Location"] == pay_url("details", payment_request)
    assert _request_row(payment_request) == ("open", None, 0, None)
    assert AuditEvent.objects.get(action="pay_link.verification_passed").changes == {
        "failed_verification_count": [0, 0],
        "verification_locked_until": [lock_ended.isoformat(), None],
    }


def test_failures_from_one_address_are_limited_across_links(client, organization, settings):
    settings.PAY_PAGE_MAX_FAILED_DOB_ATTEMPTS_PER_ADDRESS = 3
    first = payment_request_make(organization=organization)
    second = payment_request_make(organization=organization)
    address = {"REMOTE_ADDR": "203.0.113.7"}

    dob_submit(client, first, WRONG_DOB, **address)
    dob_submit(client, first, WRONG_DOB, **address)
    assert "You have 4 attempts left." in text(dob_submit(client, second, WRONG_DOB, **address))

    refused = dob_submit(client, second, **address)  # even the right answer

    assert refused.status_code == 429
    assert "There have been too many incorrect attempts from your network. Wait an hour and try again." in text(refused)
    assert "Or call Riverside Family Medicine at +12175550100." in text(refused)
    assert _request_row(first) == ("open", None, 2, None)
    assert _request_row(second) == ("open", None, 1, None)
    refusal = AuditEvent.objects.get(action="pay_link.verification_refused")
    assert (refusal.payment_request_id, refusal.ip_address, refusal.changes) == (
        second.pk,
        "203.0.113.7",
        {"reason": "address_limit"},
    )
    # Another address is not affected.
    assert dob_submit(client, second, REMOTE_ADDR="198.51.100.20")["Location"] == pay_url("details", second)


def test_the_check_is_remembered_for_a_while_only(client, organization, monkeypatch):
    payment_request = payment_request_make(organization=organization)
    verified(client, payment_request)
    assert client.get(pay_url("details", payment_request)).status_code == 200

    later = pay_page.time.time() + pay_page.VERIFICATION_LIFETIME_SECONDS + 1
    monkeypatch.setattr(pay_page.time, "time", lambda: later)

    assert client.get(pay_url("details", payment_request))["Location"] == pay_url("verify", payment_request)


def test_the_check_is_per_link(client, organization):
    first = payment_request_make(organization=organization)
    second = payment_request_make(organization=organization, patient=first.patient)
    verified(client, first)

    assert client.get(pay_url("details", first)).status_code == 200
    assert client.get(pay_url("details", second))["Location"] == pay_url("verify", second)


def test_opening_and_passing_are_audited_with_the_address(client, organization):
    payment_request = payment_request_make(organization=organization)

    client.get(pay_url("verify", payment_request), REMOTE_ADDR="198.51.100.4")
    dob_submit(client, payment_request, REMOTE_ADDR="198.51.100.4")
    client.post(pay_url("checkout", payment_request), REMOTE_ADDR="198.51.100.4")

    events = AuditEvent.objects.filter(payment_request=payment_request).order_by("id")
    assert [(e.action, e.actor_type, e.ip_address, e.patient_id) for e in events] == [
        ("pay_link.opened", "patient", "198.51.100.4", payment_request.patient_id),
        ("pay_link.verification_passed", "patient", "198.51.100.4", payment_request.patient_id),
        ("checkout.started", "patient", "198.51.100.4", payment_request.patient_id),
    ]
    started = events.last()
    transaction = Transaction.objects.get()
    assert started.transaction_id == transaction.pk
    assert started.changes["checkout_id"] == transaction.gateway_checkout_id
    assert started.changes["amount_cents"] == 4500
