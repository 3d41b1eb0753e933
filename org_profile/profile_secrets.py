"""The organization profile's secrets, encrypted at rest: the full tax ID (EIN) and its people's
dates of birth and SSN last 4 digits (lumapay/encryption.py, keys in ``ORGANIZATION_PROFILE_KEYS``).

Only the Stripe push (transactions.services.stripe_profile) reads them back; pages, the audit
trail and logs never see them in clear: the tax ID's last 4 digits are kept apart for display,
and a person's date of birth and SSN digits are "on file".
"""

from __future__ import annotations

from cryptography.fernet import MultiFernet
from django.views.decorators.debug import sensitive_variables

from lumapay.encryption import InvalidToken, fernet_for, text_decrypt, text_encrypt
from lumapay.errors import ApplicationError

SETTING = "ORGANIZATION_PROFILE_KEYS"


def _fernet() -> MultiFernet:
    return fernet_for(
        setting=SETTING,
        purpose="lumapay-organization-profile",
        what="the organization's tax ID and its owners' personal details",
    )


@sensitive_variables("value")
def secret_encrypt(value: str) -> str:
    return text_encrypt(_fernet(), value)


@sensitive_variables()
def secret_decrypt(token: str) -> str:
    try:
        return text_decrypt(_fernet(), token)
    except InvalidToken:
        raise ApplicationError(
            f"The organization profile's secrets cannot be decrypted with the keys in {SETTING}: put back the "
            "key they were stored with, or enter them again."
        ) from None


def secret_rotate(token: str) -> str:
    """The same secret, encrypted with the first key."""
    return _fernet().rotate(token.encode()).decode() if token else ""
