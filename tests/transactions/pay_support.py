"""Helpers for the pay-page tests: a payment request as staff would have sent it, its link, and a
patient's steps through the pages with Django's test client."""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

from django.urls import reverse
from django.utils import timezone

from transactions.enums import PaymentRequestKind, PaymentRequestStatus
from transactions.links import payment_link_token
from transactions.models import PaymentRequest

from ..factories import LocationFactory, PatientFactory

CARD_YEAR = str(datetime.date.today().year + 3)
SUCCEEDS = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
INSUFFICIENT_FUNDS = "4000 0000 0000 9995"
AUTHENTICATE = "4000 0025 0000 3155"


def payment_request_make(
    *,
    organization,
    patient=None,
    location=None,
    amount_cents: int = 4500,
    status: str = PaymentRequestStatus.OPEN,
    expires_at: datetime.datetime | None = None,
    billing_item: str = "Office visit copay",
    note: str = "",
) -> PaymentRequest:
    patient = patient or PatientFactory(organization=organization)
    if location is None:
        location = organization.locations.filter(name="Downtown Clinic").first() or LocationFactory(
            organization=organization, name="Downtown Clinic", address="12 Elm St"
        )
    return PaymentRequest.objects.create(
        organization=organization,
        patient=patient,
        location=location,
        kind=PaymentRequestKind.COPAY,
        billing_item=billing_item,
        amount_cents=amount_cents,
        note=note,
        status=status,
        expires_at=expires_at or timezone.now() + datetime.timedelta(days=30),
    )


def pay_url(name: str, payment_request: PaymentRequest) -> str:
    return reverse(f"pay:{name}", kwargs={"token": payment_link_token(payment_request)})


def dob_fields(date: datetime.date) -> dict:
    return {"month": f"{date.month:02d}", "day": f"{date.day:02d}", "year": str(date.year)}


def dob_submit(client, payment_request: PaymentRequest, date: datetime.date | None = None, **extra):
    date = date or payment_request.patient.date_of_birth
    return client.post(pay_url("verify", payment_request), dob_fields(date), **extra)


def verified(client, payment_request: PaymentRequest):
    response = dob_submit(client, payment_request)
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def path_of(url: str) -> str:
    return urlsplit(url).path


def card_fields(number: str = SUCCEEDS, *, cvc: str = "123") -> dict:
    return {"number": number, "expiry_month": "12", "expiry_year": CARD_YEAR, "cvc": cvc}


def checkout_path(client, payment_request: PaymentRequest) -> str:
    """Press "Pay" on the details page; the path of the hosted checkout it sends the patient to."""
    response = client.post(pay_url("checkout", payment_request))
    assert response.status_code == 302, response.content.decode()[:500]
    return path_of(response["Location"])


def text(response) -> str:
    return response.content.decode()
