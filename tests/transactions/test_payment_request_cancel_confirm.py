"""Cancelling a payment request takes a confirmation step (a page, so it works without JavaScript)."""

import pytest
from django.urls import reverse

from lumapay.models import AuditEvent
from transactions.enums import PaymentRequestStatus
from transactions.models import PaymentRequest

from ..factories import PaymentRequestFactory
from ..two_step import VerifiedClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def open_request(organization, location, patient):
    return PaymentRequestFactory(organization=organization, location=location, patient=patient)


def _cancel_url(payment_request):
    return reverse("transactions:payment_request_cancel", args=[payment_request.pk])


def _detail_url(payment_request):
    return reverse("transactions:payment_request_detail", args=[payment_request.pk])


def test_the_request_page_links_to_the_confirmation_instead_of_cancelling_in_one_click(client_for, manager, open_request):
    body = client_for(manager).get(_detail_url(open_request)).content.decode()

    assert f'<a class="button danger" href="{_cancel_url(open_request)}">Cancel this request…</a>' in body
    assert f'action="{_cancel_url(open_request)}"' not in body


def test_the_confirmation_page_asks_and_changes_nothing(client_for, manager, open_request):
    response = client_for(manager).get(_cancel_url(open_request))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Cancel this payment request?" in body
    assert '<input type="hidden" name="confirmed" value="1">' in body
    assert '<button type="submit" class="danger">Yes, cancel the request</button>' in body
    assert f'<a class="button secondary" href="{_detail_url(open_request)}">No, keep it</a>' in body
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0


def test_an_unconfirmed_post_shows_the_confirmation_and_keeps_the_reason(client_for, manager, open_request):
    response = client_for(manager).post(_cancel_url(open_request), {"reason": "Paid at the desk", "next": "/patients/"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "Cancel this payment request?" in body
    assert ">\nPaid at the desk</textarea>" in body
    assert '<input type="hidden" name="next" value="/patients/">' in body
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN
    assert AuditEvent.objects.count() == 0


def test_the_confirmed_post_cancels(client_for, manager, open_request):
    response = client_for(manager).post(
        _cancel_url(open_request), {"reason": "Paid at the desk", "confirmed": "1"}, follow=True
    )

    assert response.redirect_chain == [(_detail_url(open_request), 302)]
    assert [str(m) for m in response.context["messages"]] == ["The payment request was cancelled. Its link no longer works."]
    stored = PaymentRequest.objects.get()
    assert (stored.status, stored.cancelled_by) == (PaymentRequestStatus.CANCELLED, manager)
    assert list(AuditEvent.objects.values_list("action", "changes")) == [
        ("payment_request.cancelled", {"status": ["open", "cancelled"], "reason": "Paid at the desk"})
    ]


def test_the_confirmation_needs_the_csrf_token(manager, open_request):
    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(_cancel_url(open_request), {"confirmed": "1"})

    assert response.status_code == 403
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.OPEN


def test_a_closed_request_has_no_confirmation_to_give(client_for, manager, organization, location, patient):
    paid = PaymentRequestFactory(organization=organization, location=location, patient=patient, status=PaymentRequestStatus.PAID)

    response = client_for(manager).get(_cancel_url(paid), follow=True)

    assert response.redirect_chain == [(_detail_url(paid), 302)]
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.PAID
    assert AuditEvent.objects.count() == 0


def test_cancel_from_the_patient_profile_goes_through_the_confirmation_and_back(client_for, manager, patient, open_request):
    client = client_for(manager)
    profile_url = reverse("patients:profile", args=[patient.pk])
    profile = client.get(profile_url).content.decode()
    link = f"{_cancel_url(open_request)}?next={profile_url}"
    assert f'href="{link}"' in profile

    confirmation = client.get(link)
    response = client.post(_cancel_url(open_request), {"confirmed": "1", "next": confirmation.context["next"]})

    assert f'<input type="hidden" name="next" value="{profile_url}">' in confirmation.content.decode()
    assert response["Location"] == profile_url
    assert PaymentRequest.objects.get().status == PaymentRequestStatus.CANCELLED
