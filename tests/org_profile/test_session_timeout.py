"""Idle sign-out and the absolute session age, enforced on the server: a member idle longer than
the organization's timeout (5–60 minutes, default 15) or signed in longer than 12 hours is signed
out with a message saying why; pages and forms count as activity, background polls do not."""

import time

import pytest
from django.contrib.auth import SESSION_KEY
from django.db import IntegrityError
from django.urls import reverse

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from org_profile.models import Organization
from org_profile.sessions import LAST_ACTIVITY_AT, SIGNED_IN_AT

from ..factories import UserFactory

pytestmark = pytest.mark.django_db

DASHBOARD = "/"


def _age(client, *, idle_minutes=0.0, signed_in_hours=None):
    """Move the session's clock: last activity ``idle_minutes`` ago (and sign-in ``signed_in_hours`` ago)."""
    session = client.session
    now = time.time()
    session[LAST_ACTIVITY_AT] = int(now - idle_minutes * 60)
    if signed_in_hours is not None:
        session[SIGNED_IN_AT] = int(now - signed_in_hours * 3600)
    session.save()


def _messages(response):
    return [str(message) for message in response.context["messages"]]


def test_a_member_idle_for_fifteen_minutes_is_signed_out_with_a_message(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=15.1)

    response = client.get("/patients/?page=2")

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next=/patients/%3Fpage%3D2"
    assert SESSION_KEY not in client.session
    login_page = client.get(response.url)
    assert _messages(login_page) == ["You were signed out after 15 minutes without activity."]


def test_fourteen_idle_minutes_keep_the_member_signed_in(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=14.5)

    assert client.get(DASHBOARD).status_code == 200
    assert client.session[SESSION_KEY] == str(manager.pk)


def test_the_timeout_is_the_organizations_setting(client_for, organization, manager):
    Organization.objects.filter(pk=organization.pk).update(idle_timeout_minutes=30)
    client = client_for(manager)
    _age(client, idle_minutes=29)
    assert client.get(DASHBOARD).status_code == 200

    _age(client, idle_minutes=31)
    response = client.get(DASHBOARD, follow=True)
    assert _messages(response) == ["You were signed out after 30 minutes without activity."]


def test_opening_a_page_is_activity(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=10)

    client.get(DASHBOARD)

    assert time.time() - client.session[LAST_ACTIVITY_AT] < 5


def test_background_polls_are_not_activity(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=10)
    before = client.session[LAST_ACTIVITY_AT]

    # The export page's progress poll and the warning script's question.
    poll = client.get(DASHBOARD, HTTP_HX_REQUEST="true", HTTP_LUMAPAY_BACKGROUND="true")
    status = client.get(reverse("session_status"))

    assert poll.status_code == 200
    assert status.json() == {"signed_in": True, "seconds_left": pytest.approx(300, abs=3)}
    assert client.session[LAST_ACTIVITY_AT] == before

    # So a page left polling still signs out on time.
    _age(client, idle_minutes=15.1)
    response = client.get(DASHBOARD, HTTP_HX_REQUEST="true", HTTP_LUMAPAY_BACKGROUND="true",
                          HTTP_HX_CURRENT_URL="http://testserver/transactions/exports/7/")
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next=%2Ftransactions%2Fexports%2F7%2F"
    assert SESSION_KEY not in client.session


def test_stay_signed_in_is_activity(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=14.2)

    response = client.post(reverse("session_keep_alive"))

    assert response.json() == {"signed_in": True, "seconds_left": pytest.approx(900, abs=3)}
    _age_keep = client.session[LAST_ACTIVITY_AT]
    assert time.time() - _age_keep < 5


def test_the_warning_script_learns_the_session_ended(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=16)

    response = client.get(reverse("session_status"))

    assert response.status_code == 401
    assert response.json() == {"signed_in": False, "login_url": reverse("login")}
    # The sign-in page it goes to says why.
    assert _messages(client.get(reverse("login") + "?next=/")) == ["You were signed out after 15 minutes without activity."]


def test_a_sign_in_ends_after_twelve_hours_however_active(client_for, manager):
    client = client_for(manager)
    _age(client, idle_minutes=0, signed_in_hours=12.01)

    response = client.get(DASHBOARD, follow=True)

    assert response.redirect_chain[0] == (f"{reverse('login')}?next=/", 302)
    assert _messages(response) == ["You were signed out 12 hours after signing in. Sign in again to continue."]


def test_a_form_sent_after_the_timeout_changes_nothing_and_returns_to_its_page(client_for, organization, administrator):
    client = client_for(administrator)
    _age(client, idle_minutes=20)

    response = client.post(
        reverse("organization_settings"),
        {"legal_name": "Changed", "refund_roles": ["manager"]},
        HTTP_REFERER="http://testserver/accounts/organization/",
    )

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next=/accounts/organization/"
    assert Organization.objects.get(pk=organization.pk).legal_name == organization.legal_name


def test_operators_idle_in_django_admin_are_signed_out_too(client_for, settings):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client = client_for(operator)
    _age(client, idle_minutes=settings.SESSION_IDLE_TIMEOUT_MINUTES + 1)

    response = client.get("/admin/org_profile/user/")

    assert response.status_code == 302
    assert response.url == "/admin/login/?next=/admin/org_profile/user/"
    assert SESSION_KEY not in client.session


def test_staff_pages_carry_the_warning_dialog_and_its_script(client_for, organization, manager):
    Organization.objects.filter(pk=organization.pk).update(idle_timeout_minutes=20)
    html = client_for(manager).get(DASHBOARD).content.decode()

    assert 'data-idle-seconds="1200"' in html
    assert 'data-warning-seconds="60"' in html
    assert "Stay signed in</button>" in html
    assert '<script src="/static/js/session.js" defer></script>' in html
    assert "<script>" not in html  # no inline script: the coming Content-Security-Policy forbids it


# -- the setting -------------------------------------------------------------------------------------


SETTINGS_FORM = {
    "legal_name": "Riverside Family Medicine PLLC",
    "address_line1": "120 Main Street",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "support_phone": "+12175550100",
    "support_email": "billing@riverside.example",
    "refund_roles": ["manager"],
}


def test_an_administrator_sets_the_idle_timeout_and_it_is_audited(client_for, organization, administrator):
    response = client_for(administrator).post(
        reverse("organization_settings"), {**SETTINGS_FORM, "idle_timeout_minutes": "30"}
    )

    assert response.status_code == 302
    assert Organization.objects.get(pk=organization.pk).idle_timeout_minutes == 30
    event = AuditEvent.objects.get(action=AuditAction.ORGANIZATION_UPDATED)
    assert event.changes == {"idle_timeout_minutes": [15, 30]}


@pytest.mark.parametrize("value", ["4", "61", "", "ten", "15.5"])
def test_an_idle_timeout_outside_five_to_sixty_minutes_is_refused(client_for, organization, administrator, value):
    response = client_for(administrator).post(
        reverse("organization_settings"), {**SETTINGS_FORM, "idle_timeout_minutes": value}
    )

    assert response.status_code == 400
    assert "Enter a whole number of minutes from 5 to 60." in response.content.decode()
    assert Organization.objects.get(pk=organization.pk).idle_timeout_minutes == 15
    assert not AuditEvent.objects.exists()


def test_the_database_refuses_an_idle_timeout_outside_the_range(organization):
    with pytest.raises(IntegrityError):
        Organization.objects.filter(pk=organization.pk).update(idle_timeout_minutes=61)
