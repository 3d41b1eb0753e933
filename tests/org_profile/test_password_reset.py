"""Password reset by e-mail: the link in the message lets the user choose a new password once."""

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory

OLD_PASSWORD = "correct horse battery"
NEW_PASSWORD = "lantern-orchard-4471"
LINK = re.compile(r"http://testserver(/accounts/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def member(organization):
    user = UserFactory(email="dana@riverside.example", first_name="Dana")
    MembershipFactory(organization=organization, user=user)
    return user


def _reset_link(client, email: str) -> str:
    response = client.post(reverse("password_reset"), {"email": email})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    match = LINK.search(mail.outbox[0].body)
    assert match, mail.outbox[0].body
    return match.group(1)


def test_reset_form_asks_for_the_email_address(client, db):
    response = client.get(reverse("password_reset"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Reset your password</h1>" in html
    assert '<label for="id_email">E-mail address</label>' in html
    assert 'type="email" name="email" id="id_email"' in html


def test_reset_email_is_addressed_to_the_user_with_a_plain_subject(client, member):
    _reset_link(client, "dana@riverside.example")

    message = mail.outbox[0]
    assert message.to == ["dana@riverside.example"]
    assert message.subject == "Reset your LumaPay password"
    assert message.body.startswith("Hello Dana,\n")
    assert "for dana@riverside.example" in message.body


def test_reset_link_sets_a_new_password_that_signs_in(client, member):
    link = _reset_link(client, "Dana@Riverside.example")

    # Django swaps the token in the URL for one kept in the session, then shows the form.
    response = client.get(link)
    assert response.status_code == 302
    set_password_url = response.url
    assert set_password_url.endswith("/set-password/")
    response = client.get(set_password_url)
    assert response.status_code == 200
    assert "<h1>Choose a new password</h1>" in response.content.decode()

    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("password_reset_complete")
    complete = client.get(response.url)
    assert "<h1>Your password has been changed</h1>" in complete.content.decode()

    old = client.post(reverse("login"), {"username": "dana@riverside.example", "password": OLD_PASSWORD})
    assert old.status_code == 200
    assert SESSION_KEY not in client.session
    new = client.post(reverse("login"), {"username": "dana@riverside.example", "password": NEW_PASSWORD})
    assert new.status_code == 302
    assert client.session[SESSION_KEY] == str(member.pk)


def test_reset_link_works_only_once(client, member):
    link = _reset_link(client, "dana@riverside.example")
    set_password_url = client.get(link).url
    client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    response = client.get(link, follow=True)

    html = response.content.decode()
    assert "<h1>This link no longer works</h1>" in html
    assert f'href="{reverse("password_reset")}"' in html
    assert 'name="new_password1"' not in html


def test_tampered_reset_link_is_refused(client, member):
    link = _reset_link(client, "dana@riverside.example")
    tampered = link[:-3] + ("x" if link[-3] != "x" else "y") + link[-2:]

    response = client.get(tampered, follow=True)

    assert "<h1>This link no longer works</h1>" in response.content.decode()


def test_weak_new_password_is_refused_with_the_reason(client, member):
    link = _reset_link(client, "dana@riverside.example")
    set_password_url = client.get(link).url

    response = client.post(set_password_url, {"new_password1": "12345", "new_password2": "12345"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "This password is too short. It must contain at least 10 characters." in html
    assert 'aria-invalid="true"' in html
    member.refresh_from_db()
    assert member.check_password(OLD_PASSWORD)


def test_unknown_address_gets_the_same_answer_and_no_email(client, member):
    response = client.post(reverse("password_reset"), {"email": "nobody@riverside.example"})

    assert response.status_code == 302
    assert response.url == reverse("password_reset_done")
    assert mail.outbox == []
    done = client.get(response.url)
    assert "If an account uses the address you entered" in done.content.decode()
