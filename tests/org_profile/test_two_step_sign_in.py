"""Two-step sign-in (issue 9, item 2): after the password, a code from an authenticator app or a
single-use backup code; required of administrators, managers and operators, and of everyone when the
organization says so; set up with a QR code; reset by an administrator or an operator; every step in
the audit trail.

These tests sign in the way a person does (the password on the sign-in page, then the code), with
``django.test.Client``: the suite's usual ``client`` passes the second step by itself.
"""

import pytest
from django.contrib import admin
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from lumapay.admin_site import OperatorsAdminSite
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from org_profile.enums import Role
from org_profile.models import Organization
from org_profile.services import mfa_backup_codes_generate
from tests.factories import MembershipFactory, UserFactory
from tests.two_step import VerifiedClient, authenticator_for, totp_code

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
DASHBOARD = reverse("transactions:dashboard")
HUB = reverse("patients:hub")
CODE_PAGE = reverse("mfa_verify")
ENROL = reverse("mfa_enrol")


@pytest.fixture(autouse=True)
def _no_wait_after_a_wrong_code(settings):
    # django-otp makes the next try wait 1 s, 2 s, 4 s ... after wrong codes; one test checks that
    # wait, the others try again at once.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def password_step(user, *, next_url: str = "") -> tuple[Client, object]:
    browser = Client(REMOTE_ADDR="203.0.113.9")
    data = {"username": user.email, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return browser, browser.post(reverse("login"), data)


def verified(browser: Client) -> bool:
    return DEVICE_ID_SESSION_KEY in browser.session


def actions(organization) -> list[str]:
    return list(AuditEvent.objects.filter(organization=organization).order_by("id").values_list("action", flat=True))


# -- signing in with a code ---------------------------------------------------------------------------


def test_a_member_with_an_authenticator_is_asked_for_a_code_after_the_password(organization, staff_user):
    authenticator_for(staff_user)

    browser, response = password_step(staff_user, next_url=HUB)

    assert response.status_code == 302
    assert response.url == f"{CODE_PAGE}?next=%2Fpatients%2F"
    assert browser.session[SESSION_KEY] == str(staff_user.pk) and not verified(browser)
    # Every staff page waits for the code, not only the one asked for.
    held = browser.get(DASHBOARD)
    assert held.status_code == 302 and held.url == f"{CODE_PAGE}?next=%2F"
    page = browser.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "<h1>Enter your sign-in code</h1>" in html
    assert 'autocomplete="one-time-code"' in html
    assert "Enter one of your backup codes instead" in html


def test_the_right_code_verifies_the_session_and_goes_where_it_was_asked(organization, staff_user):
    device = authenticator_for(staff_user)
    browser, _ = password_step(staff_user, next_url=HUB)
    session_before = browser.session.session_key

    response = browser.post(CODE_PAGE, {"code": totp_code(device), "next": HUB})

    assert response.status_code == 302 and response.url == HUB
    assert verified(browser)
    assert browser.session.session_key != session_before
    assert browser.get(HUB).status_code == 200
    assert actions(organization) == []


def test_a_wrong_code_is_refused_audited_and_the_session_stays_unverified(organization, staff_user):
    device = authenticator_for(staff_user)
    browser, _ = password_step(staff_user)
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"

    response = browser.post(CODE_PAGE, {"code": wrong})

    assert response.status_code == 400
    assert "That code did not work." in response.content.decode()
    assert not verified(browser)
    assert browser.get(DASHBOARD).url.startswith(CODE_PAGE)
    event = AuditEvent.objects.get(organization=organization)
    assert event.action == AuditAction.MFA_CODE_FAILED
    assert event.actor_user == staff_user and event.ip_address == "203.0.113.9"
    assert event.changes == {"member": staff_user.email, "kind": "authenticator"}


def test_a_code_works_once(organization, staff_user):
    device = authenticator_for(staff_user)
    code = totp_code(device)
    first, _ = password_step(staff_user)
    assert first.post(CODE_PAGE, {"code": code}).status_code == 302

    second, _ = password_step(staff_user)
    response = second.post(CODE_PAGE, {"code": code})

    assert response.status_code == 400 and not verified(second)


def test_after_a_wrong_code_the_next_try_waits(settings, organization, staff_user):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60
    device = authenticator_for(staff_user)
    browser, _ = password_step(staff_user)
    browser.post(CODE_PAGE, {"code": "000000" if totp_code(device) != "000000" else "111111"})

    response = browser.post(CODE_PAGE, {"code": totp_code(device)})

    assert response.status_code == 400
    assert "wait 60 seconds before the next try" in response.content.decode()
    assert not verified(browser)


# -- backup codes ----------------------------------------------------------------------------------


def test_a_backup_code_signs_in_once_and_is_stored_only_as_a_hash(organization, staff_user):
    authenticator_for(staff_user)
    codes = mfa_backup_codes_generate(user=staff_user)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = set(StaticToken.objects.filter(device__user=staff_user).values_list("token", flat=True))
    assert not stored & {code.replace("-", "") for code in codes} and len(stored) == 10

    lost_phone, _ = password_step(staff_user)
    response = lost_phone.post(CODE_PAGE, {"code": codes[3].upper()}, follow=True)

    assert verified(lost_phone)
    assert "You signed in with a backup code; 9 left." in response.content.decode()
    assert actions(organization)[-1] == AuditAction.MFA_BACKUP_CODE_USED
    again, _ = password_step(staff_user)
    assert again.post(CODE_PAGE, {"code": codes[3]}).status_code == 400
    assert not verified(again)
    assert actions(organization)[-1] == AuditAction.MFA_CODE_FAILED


def test_new_backup_codes_replace_the_old_ones(organization, staff_user):
    authenticator_for(staff_user)
    old = mfa_backup_codes_generate(user=staff_user)
    browser = VerifiedClient()
    browser.force_login(staff_user)

    response = browser.post(reverse("mfa_backup_codes_new"))

    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert "LumaPay shows them only this once" in html and 'download="lumapay-backup-codes.txt"' in html
    assert html.count("<li><code>") == 10
    assert old[0] not in html
    assert StaticToken.objects.filter(device__user=staff_user).count() == 10
    retry, _ = password_step(staff_user)
    assert retry.post(CODE_PAGE, {"code": old[0]}).status_code == 400
    assert actions(organization)[-2:] == [AuditAction.MFA_BACKUP_CODES_GENERATED, AuditAction.MFA_CODE_FAILED]


# -- who must, and setting it up ---------------------------------------------------------------------


def test_a_manager_without_an_authenticator_sets_one_up_before_anything_else(organization, manager):
    browser, response = password_step(manager, next_url=HUB)

    assert response.status_code == 302 and response.url == f"{ENROL}?next=%2Fpatients%2F"
    for page in (DASHBOARD, HUB, reverse("mfa_security"), reverse("organization_settings")):
        held = browser.get(page)
        assert held.status_code == 302 and held.url.startswith(ENROL), page
    htmx = browser.get(HUB, headers={"HX-Request": "true"})
    assert htmx["HX-Redirect"] == f"{ENROL}?next=%2Fpatients%2F"


def test_setting_up_shows_a_qr_code_and_the_key_then_a_code_confirms_it(organization, manager):
    browser, _ = password_step(manager)

    page = browser.get(ENROL)

    html = page.content.decode()
    assert page.status_code == 200
    assert '<img src="data:image/svg+xml;base64,' in html
    assert "<script>" not in html and " style=" not in html
    key = browser.session["mfa_enrol_key"]
    assert " ".join(page.context["secret"].split()) in html
    # A wrong code sets nothing up.
    refused = browser.post(ENROL, {"code": "12345x"})
    assert refused.status_code == 400 and "That code does not match." in refused.content.decode()
    assert not TOTPDevice.objects.filter(user=manager).exists()

    done = browser.post(ENROL, {"code": totp_code(key), "next": HUB})

    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    assert done.content.decode().count("<li><code>") == 10
    assert 'href="/patients/">I have saved my codes: continue</a>' in done.content.decode()
    device = TOTPDevice.objects.get(user=manager)
    assert device.key == key and device.confirmed
    assert StaticToken.objects.filter(device__user=manager).count() == 10
    assert verified(browser) and browser.get(HUB).status_code == 200
    event = AuditEvent.objects.get(organization=organization)
    assert event.action == AuditAction.MFA_ENROLLED and event.actor_user == manager
    assert event.changes == {"member": manager.email, "replaced_earlier_authenticator": False}


def test_a_password_alone_cannot_replace_an_authenticator(organization, manager):
    device = authenticator_for(manager)
    browser, _ = password_step(manager)

    response = browser.get(ENROL)
    posted = browser.post(ENROL, {"code": "123456"})

    assert response.status_code == 302 and response.url.startswith(CODE_PAGE)
    assert posted.status_code == 302 and posted.url.startswith(CODE_PAGE)
    assert list(TOTPDevice.objects.filter(user=manager)) == [device]


def test_a_sub_account_user_signs_in_with_the_password_alone_unless_the_organization_asks(client_for, organization, staff_user, administrator):
    browser, response = password_step(staff_user)
    assert response.status_code == 302 and response.url == DASHBOARD
    assert browser.get(DASHBOARD).status_code == 200

    saved = client_for(administrator).post(
        reverse("organization_settings"),
        {"legal_name": organization.legal_name, "refund_roles": ["manager"], "mfa_required_for_everyone": "on"},
    )

    assert saved.status_code == 302
    assert Organization.objects.get(pk=organization.pk).mfa_required_for_everyone is True
    event = AuditEvent.objects.get(organization=organization, action=AuditAction.ORGANIZATION_UPDATED)
    assert event.changes["mfa_required_for_everyone"] == [False, True]
    # The session already open is held too, and the next sign-in goes to setting it up.
    assert browser.get(DASHBOARD).url == f"{ENROL}?next=%2F"
    _, again = password_step(staff_user)
    assert again.url == f"{ENROL}?next=%2F"


def test_the_settings_page_shows_the_two_step_setting_to_administrators(client_for, organization, administrator):
    html = client_for(administrator).get(reverse("organization_settings")).content.decode()

    assert 'name="mfa_required_for_everyone"' in html
    assert "Require two-step sign-in for everyone" in html
    assert f'href="{reverse("members")}"' in html


# -- reset by an administrator -----------------------------------------------------------------------


def test_an_administrator_resets_a_members_two_step_sign_in(client_for, organization, administrator, manager):
    authenticator_for(manager)
    mfa_backup_codes_generate(user=manager)
    membership = manager.memberships.get()
    members_page = client_for(administrator).get(reverse("members")).content.decode()
    assert manager.email in members_page and "Reset two-step sign-in" in members_page
    session_of_manager = VerifiedClient()
    session_of_manager.force_login(manager)
    AuditEvent.objects.all().delete()

    response = client_for(administrator).post(reverse("member_mfa_reset", args=[membership.pk]), follow=True)

    assert f"Reset two-step sign-in for {manager.email}" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=manager).exists()
    assert not StaticDevice.objects.filter(user=manager).exists()
    event = AuditEvent.objects.get(organization=organization)
    assert (event.action, event.actor_user) == (AuditAction.MFA_RESET, administrator)
    assert event.changes == {
        "member": manager.email, "authenticators_removed": 1, "backup_codes_removed": 10, "by": "administrator"
    }
    # The manager's open session no longer counts as verified: they set up a new app first.
    assert session_of_manager.get(DASHBOARD).url == f"{ENROL}?next=%2F"


def test_an_administrator_cannot_reset_another_organizations_member(client_for, administrator, other_organization):
    stranger = MembershipFactory(organization=other_organization, role=Role.MANAGER)
    authenticator_for(stranger.user)

    response = client_for(administrator).post(reverse("member_mfa_reset", args=[stranger.pk]))

    assert response.status_code == 404
    assert TOTPDevice.objects.filter(user=stranger.user).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.MFA_RESET).exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_only_administrators_reset_two_step_sign_in(client, organization, administrator, role):
    target = administrator.memberships.get()
    authenticator_for(administrator)
    other = MembershipFactory(organization=organization, role=role).user
    client.force_login(other)

    response = client.post(reverse("member_mfa_reset", args=[target.pk]))

    assert response.status_code == 403
    assert client.get(reverse("members")).status_code == 403
    assert TOTPDevice.objects.filter(user=administrator).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.MFA_RESET).exists()


# -- operators and /admin/ ---------------------------------------------------------------------------


@pytest.fixture
def operator(db):
    return UserFactory(is_staff=True, is_superuser=True)


def test_the_operators_admin_needs_the_second_step(operator):
    anonymous = Client().get("/admin/")
    assert anonymous.status_code == 302 and anonymous.url.startswith("/admin/login/")
    assert Client().get(anonymous.url).url == "/accounts/login/?next=/admin/"

    browser, response = password_step(operator, next_url="/admin/")

    # An operator must use two-step sign-in: with nothing set up, they set it up first.
    assert response.url == f"{ENROL}?next=%2Fadmin%2F"
    assert browser.get("/admin/").url.startswith(ENROL)
    device = authenticator_for(operator)
    assert browser.get("/admin/").url.startswith(CODE_PAGE)
    assert browser.post(CODE_PAGE, {"code": totp_code(device), "next": "/admin/"}).url == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_a_verified_member_who_is_not_an_operator_is_refused_by_the_admin(client, organization, administrator):
    client.force_login(administrator)

    assert client.get("/admin/login/?next=/admin/").status_code == 403


def test_every_model_stays_registered_on_the_operators_site():
    from django.contrib.admin.sites import site as default_site

    registered = {model._meta.label for model in admin.site._registry}

    assert isinstance(default_site._wrapped if hasattr(default_site, "_wrapped") else default_site, OperatorsAdminSite)
    assert {
        "org_profile.User", "org_profile.Organization", "org_profile.Membership", "org_profile.Location",
        "lumapay.AuditEvent", "otp_totp.TOTPDevice", "otp_static.StaticDevice", "ehr_sync.Patient",
    } <= registered


def test_an_operator_resets_a_users_two_step_sign_in_in_the_admin(client, operator, organization, manager):
    authenticator_for(manager)
    client.force_login(operator)

    response = client.post(
        reverse("admin:org_profile_user_changelist"),
        {"action": "two_step_sign_in_reset", "_selected_action": [manager.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert not TOTPDevice.objects.filter(user=manager).exists()
    event = AuditEvent.objects.get(organization=organization, action=AuditAction.MFA_RESET)
    assert event.actor_user == operator and event.changes["by"] == "operator"
