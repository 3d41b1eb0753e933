"""Re-authentication before the most sensitive actions: exporting transactions and changing who
may refund ask for the password again when it was last typed more than a few minutes ago. A GET
returns to itself afterwards; a POST is never replayed: the member is back on the form."""

import time

import pytest
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from urllib.parse import quote

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from org_profile.access import reauthentication_required
from org_profile.models import Organization
from org_profile.sessions import AUTHENTICATED_AT

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
CONFIRM = "/accounts/confirm-password/"
SETTINGS_URL = "/accounts/organization/"
FORM = {"idle_timeout_minutes": "15"}


def _password_typed(client, *, minutes_ago):
    session = client.session
    session[AUTHENTICATED_AT] = int(time.time() - minutes_ago * 60)
    session.save()


def _messages(response):
    return [str(message) for message in response.context["messages"]]


# -- exports ------------------------------------------------------------------------------------------


def test_an_export_asks_for_the_password_when_it_was_typed_long_ago(client_for, manager):
    client = client_for(manager)
    _password_typed(client, minutes_ago=6)

    response = client.post(reverse("transactions:export_create"), {"kind": "copay"})

    assert response.status_code == 302
    assert response.url == f"{CONFIRM}?next={quote('/?kind=copay', safe='')}"
    assert not AuditEvent.objects.filter(action=AuditAction.TRANSACTIONS_EXPORTED).exists()
    page = client.get(response.url)
    assert page.status_code == 200
    assert "<h1>Confirm your password</h1>" in page.content.decode()
    assert _messages(page) == ["Nothing was done yet: confirm your password, then try again."]


def test_after_the_password_the_member_is_back_on_the_dashboard_and_the_export_works(client_for, manager):
    client = client_for(manager)
    _password_typed(client, minutes_ago=6)

    response = client.post(CONFIRM, {"password": PASSWORD, "next": "/?kind=copay"})

    assert response.status_code == 302
    assert response.url == "/?kind=copay"
    exported = client.post(reverse("transactions:export_create"), {"kind": "copay"})
    assert exported.status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.TRANSACTIONS_EXPORTED).count() == 1


def test_a_recent_sign_in_exports_without_asking(client_for, manager):
    client = client_for(manager)

    assert client.post(reverse("transactions:export_create"), {}).status_code == 200


def test_a_wrong_password_is_refused_and_counts_towards_the_lockout(client_for, manager):
    from axes.models import AccessAttempt

    client = client_for(manager)
    _password_typed(client, minutes_ago=6)

    response = client.post(CONFIRM, {"password": "not it", "next": "/"})

    assert response.status_code == 400
    assert "That is not your password. Try again." in response.content.decode()
    assert time.time() - client.session[AUTHENTICATED_AT] > 300
    assert AccessAttempt.objects.get().username == manager.email.lower()


def test_the_confirm_page_never_sends_the_member_to_another_site(client_for, manager):
    client = client_for(manager)

    response = client.post(CONFIRM, {"password": PASSWORD, "next": "https://evil.example/"})

    assert response.url == reverse("transactions:dashboard")


# -- who may refund ------------------------------------------------------------------------------------


def test_changing_who_may_refund_asks_for_the_password_and_keeps_what_was_typed(client_for, organization, administrator):
    client = client_for(administrator)
    _password_typed(client, minutes_ago=6)

    response = client.post(
        SETTINGS_URL, {**FORM, "refund_roles": ["manager", "staff"]}, HTTP_REFERER=f"http://testserver{SETTINGS_URL}"
    )

    assert response.status_code == 302
    assert response.url == f"{CONFIRM}?next={quote(SETTINGS_URL, safe='')}"
    assert Organization.objects.get(pk=organization.pk).refund_roles == ["administrator", "manager"]
    assert not AuditEvent.objects.exists()

    back = client.post(CONFIRM, {"password": PASSWORD, "next": SETTINGS_URL})
    assert back.url == SETTINGS_URL
    form_page = client.get(SETTINGS_URL)
    html = form_page.content.decode()
    # The form as it was sent, not saved yet.
    assert 'name="refund_roles" value="staff" id="id_refund_roles_1" checked' in html
    assert Organization.objects.get(pk=organization.pk).refund_roles == ["administrator", "manager"]
    assert _messages(form_page) == ["Nothing was changed yet: confirm your password, then save again."]

    saved = client.post(SETTINGS_URL, {**FORM, "refund_roles": ["manager", "staff"]})
    assert saved.status_code == 302
    assert Organization.objects.get(pk=organization.pk).refund_roles == ["administrator", "manager", "staff"]


def test_other_settings_are_saved_without_asking_again(client_for, organization, administrator):
    client = client_for(administrator)
    _password_typed(client, minutes_ago=60)

    response = client.post(SETTINGS_URL, {**FORM, "idle_timeout_minutes": "30", "refund_roles": ["manager"]})

    assert response.status_code == 302
    assert response.url == SETTINGS_URL
    assert Organization.objects.get(pk=organization.pk).idle_timeout_minutes == 30


# -- the decorator ----------------------------------------------------------------------------------------


def _request(method, path, *, user, minutes_ago):
    request = getattr(RequestFactory(), method)(path)
    SessionMiddleware(lambda r: None).process_request(request)
    MessageMiddleware(lambda r: None).process_request(request)
    request.session[AUTHENTICATED_AT] = int(time.time() - minutes_ago * 60)
    request.user = user
    return request


def test_a_get_returns_to_itself_after_the_password():
    user = UserFactory()
    view = reauthentication_required(max_age=120)(lambda request: HttpResponse("the action"))

    asked = view(_request("get", "/accounts/mfa/?step=2", user=user, minutes_ago=3))
    done = view(_request("get", "/accounts/mfa/?step=2", user=user, minutes_ago=1))

    assert asked.status_code == 302
    assert asked.url == f"{CONFIRM}?next=%2Faccounts%2Fmfa%2F%3Fstep%3D2"
    assert done.content == b"the action"


def test_the_default_age_is_configurable(settings):
    settings.REAUTHENTICATION_MAX_AGE_MINUTES = 30
    user = UserFactory()
    view = reauthentication_required()(lambda request: HttpResponse("the action"))

    assert view(_request("get", "/x/", user=user, minutes_ago=20)).content == b"the action"
    assert view(_request("get", "/x/", user=user, minutes_ago=31)).status_code == 302
