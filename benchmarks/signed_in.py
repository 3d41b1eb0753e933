"""A benchmark's member signed in as the sign-in pages would leave them: the password step
(``force_login``) and the second step, with an authenticator app set up for the member if they
had none (administrators and managers must sign in in two steps)."""

from __future__ import annotations

import secrets


def sign_in(client, user) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, key=secrets.token_hex(20), name="Authenticator app", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
