"""The 403, 404 and 500 pages, as production (DEBUG off) shows them: styled, helpful, with a way back."""

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

STYLESHEET = '<link rel="stylesheet" href="/static/css/lumapay.css">'


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


def test_a_signed_in_member_who_mistypes_an_address_gets_a_styled_404_with_the_menu(production, client_for, manager):
    response = client_for(manager).get("/transactions/not-a-page/")

    body = response.content.decode()
    assert response.status_code == 404
    assert STYLESHEET in body
    assert "<title>Page not found · LumaPay</title>" in body
    assert "<h1>This page does not exist</h1>" in body
    assert '<nav class="mainnav" aria-label="Main">' in body
    assert f'<a class="button" href="{reverse("transactions:dashboard")}">Go to the dashboard</a>' in body


def test_another_organizations_transaction_is_the_same_helpful_404(production, client_for, manager):
    response = client_for(manager).get(reverse("transactions:transaction_detail", args=[999_999]))

    assert response.status_code == 404
    assert "<h1>This page does not exist</h1>" in response.content.decode()


def test_a_visitor_who_is_not_signed_in_sees_no_staff_menu_on_a_404(production, client):
    response = client.get("/pay/not-a-link/at-all/")

    body = response.content.decode()
    assert response.status_code == 404
    assert "<h1>This page does not exist</h1>" in body
    assert "payment link" in body
    assert "mainnav" not in body and "Log out" not in body
    assert f'<a class="button" href="{reverse("login")}">Staff sign-in</a>' in body


def test_a_role_that_may_not_open_a_page_gets_a_styled_403_saying_why(production, client_for, staff_user):
    response = client_for(staff_user).get(reverse("organization_settings"))

    body = response.content.decode()
    assert response.status_code == 403
    assert STYLESHEET in body
    assert "<h1>You cannot open this page</h1>" in body
    assert "Your role does not allow this. You are signed in as Sub-account user." in body
    assert f'<a class="button" href="{reverse("transactions:dashboard")}">Go to the dashboard</a>' in body


def test_the_500_page_is_styled_and_needs_no_request_context(production):
    response = server_error(RequestFactory().get("/"))

    body = response.content.decode()
    assert response.status_code == 500
    assert STYLESHEET in body
    assert "<h1>Something went wrong on our side</h1>" in body
    assert '<a class="button" href="/">Go to the start page</a>' in body


def test_the_404_reads_in_spanish_for_a_spanish_reader(production, rf):
    from django.contrib.auth.models import AnonymousUser
    from django.utils import translation
    from django.views.defaults import page_not_found

    request = rf.get("/pay/not-a-link/at-all/")
    request.user = AnonymousUser()
    request.membership = None
    with translation.override("es"):
        body = page_not_found(request, exception=None).content.decode()

    assert "<h1>Esta página no existe</h1>" in body
    assert "pida a su clínica un enlace nuevo" in body
