"""Secrets encrypted at rest with Fernet, one list of keys per purpose.

Each purpose (EHR connection credentials, the organization profile's tax ID and its people's dates
of birth and SSN digits) reads its own setting: one or more Fernet keys, newest first. The first
encrypts; every one of them decrypts, so a key is rotated by putting a new one in front,
re-encrypting (``MultiFernet.rotate``) and then removing the old one. With DEBUG on and no keys
set, a development key is derived from ``SECRET_KEY`` and the purpose, so ``make dev`` works out
of the box; production refuses to store or read such secrets without keys.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

__all__ = ["InvalidToken", "fernet_for", "text_decrypt", "text_encrypt"]


def fernet_for(*, setting: str, purpose: str, what: str) -> MultiFernet:
    """The keys of ``settings.<setting>`` as one MultiFernet. ``purpose`` names the development key
    (derived from SECRET_KEY when DEBUG is on and no key is set); ``what`` is what the keys protect,
    for the error that says they are missing."""
    keys = [key.strip() for key in getattr(settings, setting, []) or [] if key.strip()]
    if not keys:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                f"{setting} is not set: {what} cannot be encrypted. Set it to a Fernet key (see the README)."
            )
        digest = hashlib.sha256(f"{purpose}:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            f"{setting} holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


@sensitive_variables("value")
def text_encrypt(fernet: MultiFernet, value: str) -> str:
    """The token to store for ``value`` ("" for nothing)."""
    return fernet.encrypt(value.encode()).decode() if value else ""


@sensitive_variables()
def text_decrypt(fernet: MultiFernet, token: str) -> str:
    """``value`` back from its token ("" for nothing); raises ``InvalidToken`` for a foreign key."""
    return fernet.decrypt(token.encode()).decode() if token else ""
