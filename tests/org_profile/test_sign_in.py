"""Signing in and out with an e-mail address, through Django's auth views and our templates."""

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture
def member(organization):
    return MembershipFactory(organization=organization, user=UserFactory(email="dana@riverside.example")).user


def test_login_page_asks_for_an_email_address_and_password(client, db):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Sign in to LumaPay</h1>" in html
    assert '<label for="id_username">E-mail address</label>' in html
    assert 'type="email" name="username" id="id_username"' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'autocomplete="current-password"' in html
    assert f'href="{reverse("password_reset")}"' in html


def test_member_signs_in_with_email_and_password(client, member):
    response = client.post(reverse("login"), {"username": "dana@riverside.example", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("transactions:dashboard")
    assert client.session[SESSION_KEY] == str(member.pk)


def test_sign_in_returns_to_the_page_that_asked_for_it(client, member):
    response = client.post(
        reverse("login"),
        {"username": "dana@riverside.example", "password": PASSWORD, "next": "/patients/"},
    )

    assert response.status_code == 302
    assert response.url == "/patients/"


def test_sign_in_never_redirects_to_another_site(client, member):
    response = client.post(
        reverse("login"),
        {"username": "dana@riverside.example", "password": PASSWORD, "next": "https://evil.example/"},
    )

    assert response.status_code == 302
    assert response.url == reverse("transactions:dashboard")


def test_wrong_password_shows_a_message_and_signs_nobody_in(client, member):
    response = client.post(reverse("login"), {"username": "dana@riverside.example", "password": "wrong password"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct e-mail address and password." in html
    # The address stays filled in; the password does not.
    assert 'value="dana@riverside.example"' in html
    assert "wrong password" not in html
    assert 'aria-invalid="true" aria-describedby="login-error"' in html
    assert SESSION_KEY not in client.session


def test_unknown_address_gets_the_same_message_as_a_wrong_password(client, member):
    response = client.post(reverse("login"), {"username": "nobody@riverside.example", "password": PASSWORD})

    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password." in response.content.decode()
    assert SESSION_KEY not in client.session


def test_inactive_user_cannot_sign_in(client, member):
    member.is_active = False
    member.save(update_fields=["is_active"])

    response = client.post(reverse("login"), {"username": "dana@riverside.example", "password": PASSWORD})

    assert response.status_code == 200
    assert SESSION_KEY not in client.session


def test_empty_form_says_which_fields_are_required(client, db):
    response = client.post(reverse("login"), {"username": "", "password": ""})

    html = response.content.decode()
    assert response.status_code == 200
    assert '<ul class="errorlist" id="id_username_error"><li>This field is required.</li></ul>' in html
    assert 'aria-invalid="true" aria-describedby="id_username_error"' in html
    assert 'aria-invalid="true" aria-describedby="id_password_error"' in html


def test_signed_in_user_opening_the_login_page_goes_to_the_dashboard(client, member):
    client.force_login(member)

    response = client.get(reverse("login"))

    assert response.status_code == 302
    assert response.url == reverse("transactions:dashboard")


def test_log_out_by_post_ends_the_session_and_returns_to_sign_in(client, member):
    client.force_login(member)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response.url == reverse("login")
    assert SESSION_KEY not in client.session


def test_log_out_by_get_is_refused_and_keeps_the_session(client, member):
    client.force_login(member)

    response = client.get(reverse("logout"))

    assert response.status_code == 405
    assert client.session[SESSION_KEY] == str(member.pk)


def test_signed_out_page_offers_to_sign_in_again(rf, db):
    from django.template.loader import render_to_string

    html = render_to_string("registration/logged_out.html", request=rf.get("/"))

    assert "<h1>You have signed out</h1>" in html
    assert f'href="{reverse("login")}"' in html
