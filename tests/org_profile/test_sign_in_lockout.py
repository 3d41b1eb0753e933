"""Sign-in lockout (django-axes): wrong passwords are limited per account and per address on the
staff sign-in and on /admin/; a locked account refuses even the right password; the message is
the same whether the e-mail address exists or not; an administrator of the organization unlocks
a member on the Members page, an operator in Django admin; every lockout and unlock is audited."""

import datetime
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.urls import reverse
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from org_profile.enums import Role

from ..factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
LOCKED = "Sign-in is paused after too many failed attempts for this e-mail address or from this network."


@pytest.fixture
def member(organization):
    return MembershipFactory(
        organization=organization, role=Role.STAFF, user=UserFactory(email="dana@riverside.example")
    ).user


def _sign_in(client, email, password, *, address="203.0.113.7", url=LOGIN):
    return client.post(url, {"username": email, "password": password}, REMOTE_ADDR=address)


def _lock(client, email, *, address="203.0.113.7", url=LOGIN, times=10):
    return [_sign_in(client, email, "wrong password", address=address, url=url).status_code for _ in range(times)]


def test_thirty_wrong_passwords_lock_the_account_and_then_the_right_one_is_refused(client, organization, member):
    statuses = _lock(client, "dana@riverside.example", times=30)

    # The tenth failure locks (10 per account by default); each later try is refused at once.
    assert statuses == [200] * 9 + [429] * 21
    response = _sign_in(client, "dana@riverside.example", PASSWORD)
    assert response.status_code == 429
    html = response.content.decode()
    assert LOCKED in html
    assert 'role="alert"' in html
    assert 'value="dana@riverside.example"' in html
    assert SESSION_KEY not in client.session
    # One lockout, audited in the member's organization, from the address it came from.
    events = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_LOCKED)
    assert [(e.organization_id, e.actor_type, e.ip_address, e.changes["email"]) for e in events] == [
        (organization.pk, ActorType.SYSTEM, "203.0.113.7", "dana@riverside.example")
    ]


def test_the_account_lock_holds_from_every_address_and_ignores_the_case_of_the_address(client, member):
    for number in range(10):
        _sign_in(client, "Dana@Riverside.example " if number % 2 else "dana@riverside.example", "nope", address=f"198.51.100.{number}")

    response = _sign_in(client, "dana@riverside.example", PASSWORD, address="192.0.2.99")

    assert response.status_code == 429
    assert SESSION_KEY not in client.session


def test_one_address_trying_many_accounts_is_locked_but_other_addresses_are_not(client, member):
    # Thirty wrong passwords from one address, each for a different account (password spraying).
    for number in range(30):
        _sign_in(client, f"someone{number}@riverside.example", "Spring2026!", address="203.0.113.50")

    refused = _sign_in(client, "dana@riverside.example", PASSWORD, address="203.0.113.50")
    assert refused.status_code == 429
    assert LOCKED in refused.content.decode()
    assert SESSION_KEY not in client.session

    # The member's own account is not locked: from the clinic's address they sign in.
    allowed = _sign_in(client, "dana@riverside.example", PASSWORD, address="198.51.100.20")
    assert allowed.status_code == 302
    assert client.session[SESSION_KEY] == str(member.pk)


def test_an_address_no_account_has_is_locked_with_the_same_message(client, member):
    known = _lock(client, "dana@riverside.example", address="198.51.100.1", times=11)
    unknown = _lock(client, "nobody@riverside.example", address="198.51.100.2", times=11)

    assert known == unknown == [200] * 9 + [429] * 2
    known_page = _sign_in(client, "dana@riverside.example", "x", address="198.51.100.1").content.decode()
    unknown_page = _sign_in(client, "nobody@riverside.example", "x", address="198.51.100.2").content.decode()
    without_tokens = lambda html: re.sub(r'(X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]+', "", html)  # noqa: E731
    assert without_tokens(known_page.replace("dana", "X")) == without_tokens(unknown_page.replace("nobody", "X"))
    # No organization learns of the unknown address.
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_IN_LOCKED).count() == 1


def test_the_lock_ends_after_the_cool_off(client, member, settings):
    _lock(client, "dana@riverside.example")
    assert _sign_in(client, "dana@riverside.example", PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - datetime.timedelta(minutes=settings.SIGN_IN_LOCKOUT_MINUTES, seconds=1)
    )

    assert _sign_in(client, "dana@riverside.example", PASSWORD).status_code == 302


def test_operators_sign_in_for_django_admin_on_the_one_sign_in_page_and_are_locked_too(client):
    # /admin/ has no password form of its own: its sign-in is the app's (then the second step)
    UserFactory(email="ops@lumapay.example", is_staff=True, is_superuser=True)
    admin_sign_in = client.get(ADMIN_LOGIN)
    assert admin_sign_in.status_code == 302 and admin_sign_in["Location"].startswith(LOGIN)

    statuses = _lock(client, "ops@lumapay.example", times=12)
    response = _sign_in(client, "ops@lumapay.example", PASSWORD)

    assert statuses == [200] * 9 + [429] * 3
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert SESSION_KEY not in client.session


def test_a_password_posted_to_the_admin_sign_in_signs_nobody_in(client, member):
    response = _sign_in(client, "dana@riverside.example", PASSWORD, url=ADMIN_LOGIN)

    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert SESSION_KEY not in client.session


# -- unlocking ---------------------------------------------------------------------------------------


MEMBERS = "/accounts/members/"


def _membership(user, organization):
    return user.memberships.get(organization=organization)


def test_an_administrator_sees_the_lock_and_unlocks_the_member(client, client_for, organization, administrator, member):
    _lock(client, "dana@riverside.example")
    admin_client = client_for(administrator)

    page = admin_client.get(MEMBERS).content.decode()
    assert '<span class="status status-locked">Locked</span>' in page
    assert 'aria-label="Unlock sign-in for dana@riverside.example">Unlock</button>' in page

    response = admin_client.post(reverse("member_unlock", args=[_membership(member, organization).pk]), REMOTE_ADDR="198.51.100.9")

    assert response.status_code == 302
    assert response.url == MEMBERS
    assert "Locked</span>" not in admin_client.get(MEMBERS).content.decode()
    event = AuditEvent.objects.get(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.organization_id, event.actor_user_id, event.actor_type, event.ip_address) == (
        organization.pk, administrator.pk, ActorType.STAFF, "198.51.100.9",
    )
    assert event.changes == {"user_id": member.pk, "email": "dana@riverside.example"}
    client.logout()
    assert _sign_in(client, "dana@riverside.example", PASSWORD).status_code == 302


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_a_manager_or_sub_account_user_cannot_unlock(client, client_for, organization, member, role):
    _lock(client, "dana@riverside.example")
    other = MembershipFactory(organization=organization, role=role).user
    other_client = client_for(other)

    assert other_client.get(MEMBERS).status_code == 403
    response = other_client.post(reverse("member_unlock", args=[_membership(member, organization).pk]))

    assert response.status_code == 403
    assert AccessAttempt.objects.filter(username="dana@riverside.example").exists()
    assert not AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED).exists()


def test_an_administrator_cannot_unlock_another_organizations_member(
    client, client_for, organization, other_organization, administrator
):
    outsider = MembershipFactory(organization=other_organization, user=UserFactory(email="lee@lakeside.example")).user
    _lock(client, "lee@lakeside.example")

    response = client_for(administrator).post(reverse("member_unlock", args=[_membership(outsider, other_organization).pk]))

    assert response.status_code == 404
    assert AccessAttempt.objects.filter(username="lee@lakeside.example").exists()
    assert not AuditEvent.objects.filter(action=AuditAction.SIGN_IN_UNLOCKED).exists()
    assert "lee@lakeside.example" not in client_for(administrator).get(MEMBERS).content.decode()


def test_an_operator_unlocks_in_django_admin(client, client_for, organization, member):
    operator = UserFactory(email="ops@lumapay.example", is_staff=True, is_superuser=True)
    _lock(client, "dana@riverside.example")
    admin_client = client_for(operator)

    listing = admin_client.get("/admin/org_profile/user/").content.decode()
    response = admin_client.post(
        "/admin/org_profile/user/",
        {"action": "unlock_sign_in", "_selected_action": [member.pk]},
        follow=True,
    )

    assert "Sign-in locked" in listing
    assert "Unlocked: dana@riverside.example." in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.SIGN_IN_UNLOCKED)
    assert (event.organization_id, event.actor_user_id) == (organization.pk, operator.pk)
    assert event.changes["by_operator"] is True
    client.logout()
    assert _sign_in(client, "dana@riverside.example", PASSWORD).status_code == 302


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(client, member, settings):
    settings.USE_X_FORWARDED_FOR = True
    # Each caller sends a made-up X-Forwarded-For; the proxy appends the address it saw.
    for number in range(10):
        client.post(
            LOGIN, {"username": f"someone{number}@riverside.example", "password": "x"},
            REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{number}, 198.51.100.{number % 2}",
        )

    assert sorted(set(AccessAttempt.objects.values_list("ip_address", flat=True))) == ["198.51.100.0", "198.51.100.1"]


def test_behind_the_proxy_one_callers_lock_does_not_lock_the_others(client, member, settings):
    settings.USE_X_FORWARDED_FOR = True
    for number in range(30):
        client.post(
            LOGIN, {"username": f"someone{number}@riverside.example", "password": "x"},
            REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.66",
        )

    refused = client.post(LOGIN, {"username": member.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.66")
    allowed = client.post(LOGIN, {"username": member.email, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.20")

    assert (refused.status_code, allowed.status_code) == (429, 302)
