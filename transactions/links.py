"""Payment links: a signed token that names a payment request and nothing else.

The token is ``<public_id>:<signature>``; it says nothing about the patient. Whether the link is
still usable (expired, cancelled, paid) is the request's state, checked on every visit.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import PaymentRequest

_SALT = "lumapay.payment-link"


def payment_link_token(payment_request: PaymentRequest) -> str:
    return signing.Signer(salt=_SALT).sign(payment_request.public_id.hex)


def payment_link_url(payment_request: PaymentRequest) -> str:
    return settings.SITE_URL + reverse("pay:verify", kwargs={"token": payment_link_token(payment_request)})


def payment_request_from_token(token: str) -> PaymentRequest | None:
    """The request a token names, or None when the token is malformed, tampered or unknown."""
    try:
        public_id = uuid.UUID(hex=signing.Signer(salt=_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None
    return (
        PaymentRequest.objects.select_related("organization", "patient", "location")
        .filter(public_id=public_id)
        .first()
    )
