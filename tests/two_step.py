"""Two-step sign-in in tests: a test client whose ``force_login`` also passes the second step, and
the current code of a user's authenticator (django-otp's TOTP, computed from the device's key).

Most tests are about what a signed-in member does, not about signing in: the ``client`` fixture
(tests/conftest.py) is a ``VerifiedClient``, so they run as a person who entered their code. Tests
of the second step itself use ``django.test.Client``, whose ``force_login`` leaves the session
unverified, as a password alone does.
"""

from __future__ import annotations

import time

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from org_profile.services import totp_key_new


def authenticator_for(user, *, key: str | None = None) -> TOTPDevice:
    """The user's authenticator app, set up (confirmed) if they had none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, key=key or totp_key_new(), name="Authenticator app", confirmed=True)
    return device


def totp_code(device_or_key, *, steps_ahead: int = 0) -> str:
    """The 6-digit code an authenticator app shows now (or ``steps_ahead`` 30-second steps later)."""
    key = device_or_key.key if isinstance(device_or_key, TOTPDevice) else device_or_key
    totp = TOTP(bytes.fromhex(key))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def fresh_totp_code(device: TOTPDevice) -> str:
    """A code the device still accepts: the current step's, or the next one's when this step's code
    was used already (django-otp accepts each step once, and one step either side of now)."""
    device.refresh_from_db()
    now_step = int(time.time()) // device.step
    return totp_code(device, steps_ahead=1 if device.last_t >= now_step else 0)


class VerifiedClient(Client):
    """Django's test client; ``force_login`` signs in and passes the second step with the user's
    authenticator app (set up for them if they had none)."""

    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        device = authenticator_for(user)
        session = self.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
