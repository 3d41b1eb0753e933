"""EHR connection credentials, encrypted at rest: a bearer token, a SMART backend-services private
key, an SFTP password or private key. Never in a log, a page or the admin in clear.

Keys come from the environment, ``EHR_CREDENTIALS_KEYS``: one or more Fernet keys, comma-separated,
newest first. The first encrypts; every one of them decrypts, so a key is rotated by putting a new
one in front, running ``manage.py rotate_ehr_credentials`` (which re-encrypts every connection with
the first key), and then removing the old one. With DEBUG on and no keys set, a development key is
derived from ``SECRET_KEY`` so ``make dev`` works out of the box; production refuses to store or read
credentials without ``EHR_CREDENTIALS_KEYS``.

Make a key with ``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``.
"""

from __future__ import annotations

import json

from cryptography.fernet import InvalidToken, MultiFernet

from lumapay.encryption import fernet_for
from lumapay.errors import ApplicationError

from .models import EhrConnection


def _fernet() -> MultiFernet:
    return fernet_for(
        setting="EHR_CREDENTIALS_KEYS", purpose="lumapay-ehr-credentials", what="EHR connection credentials"
    )


def credentials_encrypt(values: dict[str, str]) -> str:
    """The token to store for ``values`` (empty values dropped; nothing at all: an empty string)."""
    values = {name: value for name, value in values.items() if value}
    if not values:
        return ""
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def credentials_read(connection: EhrConnection) -> dict[str, str]:
    """The connection's secrets, decrypted: {"bearer_token": …} / {"private_key_pem": …} / {"password": …}."""
    if not connection.credentials_encrypted:
        return {}
    try:
        return json.loads(_fernet().decrypt(connection.credentials_encrypted.encode()))
    except InvalidToken:
        raise ApplicationError(
            "The connection's credentials cannot be decrypted with the keys in EHR_CREDENTIALS_KEYS: "
            "put back the key they were stored with, or enter the credentials again."
        ) from None


def credentials_rotate(token: str) -> str:
    """The same secrets, encrypted with the first key (MultiFernet.rotate)."""
    return _fernet().rotate(token.encode()).decode() if token else ""


def credentials_hint(connection: EhrConnection) -> dict[str, str]:
    """What a page may show of the secrets: which are set, and the last four characters of each."""
    return {name: f"…{value[-4:]}" if len(value) > 8 else "set" for name, value in credentials_read(connection).items()}
