"""Headers: no-store on every page that shows PHI, a Content-Security-Policy without inline script
or style, Permissions-Policy, HSTS as configured, and `check --deploy` clean."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from ..factories import PatientFactory
from ..transactions.pay_support import dob_submit, pay_url, payment_request_make
from ..transactions.payments import paid_transaction

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/root"),
    "PYTHONPATH": str(BASE_DIR),
    "DJANGO_SETTINGS_MODULE": "lumapay.settings",
    "DEBUG": "false",
    "SECRET_KEY": "p7Vq2Lr9Xw4Zt8Ny3Kc6Bm1Hd5Gf0Js-Ua7Ei2Ow9Ry4Tx8Qz3Lk",
    "ALLOWED_HOSTS": "pay.clinic.example",
    "DATABASE_URL": "postgres://lumapay:pw@db.internal:5432/lumapay",
    # Production needs Redis (the rate limits every process shares); nothing here connects to it.
    "REDIS_URL": "redis://cache.internal:6379/0",
}
# Served pages: e-mails and the receipt PDF's HTML are not (they must be styled inline).
NOT_SERVED = ("templates/transactions/emails/", "templates/transactions/payment_requests/messages/",
              "templates/intake_forms/messages/",
              "templates/transactions/receipts/receipt_pdf.html", "templates/intake_forms/submission_pdf.html",
              "templates/helpcenter/luma_u/certificate_pdf.html")
INLINE = re.compile(r"<style|<script(?![^>]*\bsrc=)|\sstyle=\"|\son[a-z]+=\"", re.IGNORECASE)


def _run(*args, **env):
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env={**PRODUCTION, **env}, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_with_the_production_settings_finds_nothing():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    "env, expected",
    [({}, "True True 31536000"), ({"SECURE_HSTS_PRELOAD": "false", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "false"}, "False False 31536000")],
)
def test_hsts_subdomains_and_preload_come_from_the_environment(env, expected):
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_HSTS_SECONDS)"
    )

    result = _run("-c", probe, **env)

    assert result.stdout.strip() == expected, result.stderr


def test_no_served_template_has_inline_script_style_or_event_handler():
    offenders = []
    for path in [*BASE_DIR.glob("templates/**/*.html"), *BASE_DIR.glob("transactions/sandbox/templates/**/*.html")]:
        relative = str(path.relative_to(BASE_DIR))
        if relative.startswith(NOT_SERVED):
            continue
        offenders += [f"{relative}: {match.group(0)}" for match in INLINE.finditer(path.read_text())]

    assert offenders == []


def _staff_pages(organization, location):
    patient = PatientFactory(organization=organization)
    transaction = paid_transaction(organization=organization, patient=patient, location=location)
    return [
        reverse("transactions:dashboard"),
        reverse("transactions:dashboard") + "?created_from=2020-01-01",
        reverse("patients:hub"),
        reverse("patients:profile", args=[patient.pk]),
        reverse("patients:edit", args=[patient.pk]),
        reverse("transactions:transaction_detail", args=[transaction.pk]),
        reverse("transactions:payment_request_new", args=[patient.pk]),
        reverse("organization_settings"),
        reverse("patients:access_log_export"),
    ]


def test_every_signed_in_page_is_no_store_with_the_policy_and_no_inline_code(client_for, administrator, organization, location):
    client = client_for(administrator)

    for url in _staff_pages(organization, location):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy, url
        assert "camera=()" in response["Permissions-Policy"]
        assert INLINE.findall(response.content.decode()) == [], url


def test_the_operators_admin_is_no_store(client):
    from ..factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    assert "no-store" in client.get("/admin/ehr_sync/patient/")["Cache-Control"]


def test_a_patients_pay_pages_are_no_store(client, organization):
    payment_request = payment_request_make(organization=organization)

    assert "no-store" in client.get(pay_url("verify", payment_request))["Cache-Control"]
    dob_submit(client, payment_request)
    details = client.get(pay_url("details", payment_request))
    assert details.status_code == 200 and "no-store" in details["Cache-Control"]
    assert INLINE.findall(details.content.decode()) == []


def test_a_public_page_may_be_cached_and_still_has_the_policy(client):
    response = client.get("/static/css/lumapay.css")
    login = client.get(reverse("login"))

    assert "no-store" not in response.get("Cache-Control", "")
    assert "default-src 'self'" in login["Content-Security-Policy"]


def test_the_chart_keeps_its_look_through_classes_one_per_percent():
    css = (BASE_DIR / "static/css/lumapay.css").read_text()

    for n in range(0, 101):
        assert f".chart-h-{n} {{ height: {n}%; }}" in css
        assert f".chart-x-{n} {{ left: {n}%; }}" in css
    assert ".htmx-request .htmx-indicator" in css
