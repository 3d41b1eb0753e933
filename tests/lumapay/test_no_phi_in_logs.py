"""No patient's name, e-mail, phone or date of birth in any log line.

A realistic run (searches by name, e-mail and phone on the Hub and the dashboard, a payment
request sent by e-mail and text, a patient who gets the date of birth wrong and then pays,
a refund, Excel exports, a receipt, the access log export, 404s with a search in the URL and a
500 whose exception quotes a patient) with every log record at DEBUG captured through the
production handler of settings.LOGGING; and gunicorn's access log for the same kind of URLs.
Then each patient's details are looked for in the output: none may appear.
"""

from __future__ import annotations

import copy
import datetime
import io
import logging
import random
import sys
from urllib.parse import quote_plus

import pytest
import requests
from django.conf import settings
from django.test import TestCase
from django.urls import reverse
from django.utils.module_loading import import_string

from lumapay.log_redaction import CeleryTaskExceptionFilter, PhiSafeFormatter, RequestPathFilter, access_path
from org_profile.enums import Role
from transactions.services.patient_messages import DeliveryRetry

from ..factories import LocationFactory, MembershipFactory, PatientFactory
from ..processes import Stack
from ..transactions.pay_support import dob_submit, pay_url, payment_request_make
from ..transactions.payments import paid_transaction
from ..two_step import authenticator_for, totp_code
from ..waiting import wait_until

pytestmark = pytest.mark.django_db

FIRST = ["Quillon", "Zephyrine", "Ottoline", "Barnaby", "Isolde", "Thaddeus", "Marisol", "Evander", "Philippa", "Cornelius"]
LAST = ["Vantwest", "Haldrupe", "Merriweather", "Kozlowska", "Abernathy", "Ravensworth", "Okonkwo", "Delacroix"]


def _patients(organization, count=40):
    rng = random.Random(9)
    patients = []
    for n in range(count):
        first, last = FIRST[n % len(FIRST)], f"{LAST[n % len(LAST)]}{chr(97 + n % 26)}{chr(97 + n // 26)}"
        patients.append(
            PatientFactory(
                organization=organization,
                first_name=first,
                last_name=last,
                email=f"{first.lower()}.{last.lower()}@mailbox.example",
                mobile_phone=f"+1217{rng.randrange(2000000, 9999999)}",
                date_of_birth=datetime.date(1940 + n, rng.randrange(1, 13), rng.randrange(1, 29)),
            )
        )
    return patients


def _phi_needles(patient) -> list[str]:
    dob = patient.date_of_birth
    digits = patient.mobile_phone.removeprefix("+1")
    return [
        patient.last_name,
        f"{patient.first_name} {patient.last_name}",
        patient.email,
        patient.email.split("@")[0],
        quote_plus(patient.email),
        patient.mobile_phone,
        digits,
        f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
        dob.isoformat(),
        f"{dob:%m/%d/%Y}",
        f"{dob.month}/{dob.day}/{dob.year}",
    ]


def _assert_no_phi(text: str, patients) -> None:
    assert text.strip(), "nothing was logged: the capture is not working"
    found = [(needle, patient.pk) for patient in patients for needle in _phi_needles(patient) if needle in text]
    assert found == [], f"PHI in the logs: {found[:10]}"


@pytest.fixture
def all_log_output():
    """Every record, at DEBUG, through the console handler settings.LOGGING gives production:
    its formatter and filters (built from the settings, with DEBUG's exception messages off)."""
    config = copy.deepcopy(settings.LOGGING)
    formatter_config = config["formatters"]["plain"]
    formatter = import_string(formatter_config.pop("()"))(
        formatter_config.pop("format"), **{**formatter_config, "exception_messages": False}
    )
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(formatter)
    for name in config["handlers"]["console"]["filters"]:
        handler.addFilter(import_string(config["filters"][name]["()"])())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quieted = {}
    for name in ("django.request", "django.server", "celery.app.trace", "transactions", "lumapay", "ehr_sync"):
        logger = logging.getLogger(name)
        quieted[name] = logger.level
        logger.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old_level)
    for name, level in quieted.items():
        logging.getLogger(name).setLevel(level)


def test_a_full_run_logs_no_patients_name_email_phone_or_date_of_birth(
    all_log_output, client, organization, monkeypatch
):
    location = LocationFactory(organization=organization, name="Downtown Clinic")
    patients = _patients(organization)
    manager = MembershipFactory(organization=organization, role=Role.MANAGER).user
    manager.set_password("correct horse battery")
    manager.save()
    administrator = MembershipFactory(organization=organization, role=Role.ADMINISTRATOR).user
    first, second = patients[0], patients[1]
    client.raise_request_exception = False

    # Staff sign in and search the Hub and the dashboard by name, e-mail and phone.
    # (a manager signs in in two steps: the password, then the authenticator app's code)
    device = authenticator_for(manager)
    client.post(reverse("login"), {"username": manager.email, "password": "correct horse battery"})
    client.post(reverse("mfa_verify"), {"code": totp_code(device)})
    for query in (f"{first.first_name} {first.last_name}", first.email, first.mobile_phone, second.last_name):
        assert client.get(reverse("patients:hub"), {"q": query}).status_code == 200
        client.get(reverse("patients:hub"), {"q": query}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="patient-results")
        client.get(reverse("transactions:dashboard"), {"q": query})
    client.get(reverse("patients:profile", args=[first.pk]))
    client.get(reverse("patients:edit", args=[first.pk]))

    # A payment request by e-mail and text; the patient gets the date of birth wrong, then pays.
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(
            reverse("transactions:payment_request_new", args=[first.pk]),
            {"location": location.pk, "kind": "copay", "billing_item": "Office visit copay", "amount": "45.00"},
        )
    payment_request = payment_request_make(organization=organization, patient=second, location=location)
    patient_client = client.__class__()
    patient_client.get(pay_url("verify", payment_request))
    dob_submit(patient_client, payment_request, datetime.date(1999, 1, 1))
    dob_submit(patient_client, payment_request)
    patient_client.get(pay_url("details", payment_request))
    with TestCase.captureOnCommitCallbacks(execute=True):
        transaction = paid_transaction(organization=organization, patient=first, location=location, amount_cents=4500)

    # A refund, a receipt, exports (at once and kept), the access log export.
    review = client.post(reverse("transactions:transaction_refund", args=[transaction.pk]), {"amount": "10.00", "reason": f"Asked by {first.first_name}"})
    client.post(reverse("transactions:transaction_refund", args=[transaction.pk]), review.context["fields"])
    client.get(reverse("transactions:transaction_receipt", args=[transaction.pk]))
    client.post(reverse("transactions:export_create"), {"q": first.last_name})
    settings.EXPORT_SYNC_MAX_ROWS = 0
    with TestCase.captureOnCommitCallbacks(execute=True):
        client.post(reverse("transactions:export_create"), {"q": first.email})
    from transactions.models import TransactionExport

    client.get(reverse("transactions:export_download", args=[TransactionExport.objects.latest("pk").pk]))
    admin_client = client.__class__()
    admin_client.force_login(administrator)
    today = datetime.date.today()
    b"".join(admin_client.get(reverse("patients:access_log_export"), {"date_from": today, "date_to": today}).streaming_content)

    # 404s with a search in the URL, and a 500 whose exception quotes a patient (as PostgreSQL's
    # "Key (email)=(…) already exists" would): the page's code is replaced to raise it.
    assert client.get(f"/patients/99999999/?q={quote_plus(first.email)}").status_code == 404
    assert client.get(f"/no-such-page/?q={quote_plus(second.last_name)}").status_code == 404

    def balance_fails(*, patient):
        raise ValueError(f"duplicate key: Key (email)=({patient.email}) for {patient.full_name} already exists")

    monkeypatch.setattr("ehr_sync.views.patient_balance", balance_fails)
    assert client.get(reverse("patients:profile", args=[first.pk]), {"q": first.mobile_phone}).status_code == 500
    logging.getLogger("celery.app.trace").info(
        "Task %(name)s[%(id)s] retry: %(exc)s",
        {"name": "t", "id": "1", "exc": f"Retry in 31s: SMTPRecipientsRefused({first.email!r})"},
    )

    output = all_log_output.getvalue()
    assert "Not Found: /patients/99999999/" in output
    assert "Internal Server Error" in output and "ValueError (message withheld" in output
    _assert_no_phi(output, patients)


def test_a_retried_delivery_names_no_address_in_its_text():
    retry = DeliveryRetry("The e-mail could not be sent: <maria@mailbox.example> refused", countdown_seconds=30)

    assert "maria" not in str(retry) and "maria" not in repr(retry)
    assert retry.reason == "The e-mail could not be sent: <maria@mailbox.example> refused"


def test_celerys_failed_task_line_keeps_the_exceptions_type_only():
    record = logging.LogRecord(
        "celery.app.trace", logging.ERROR, __file__, 1, "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
        ({"name": "transactions.tasks.x", "id": "1", "exc": "ValueError('maria@mailbox.example')"},), None,
    )
    CeleryTaskExceptionFilter().filter(record)

    assert record.getMessage() == "Task transactions.tasks.x[1] raised unexpected: ValueError"


def test_a_logged_traceback_keeps_the_frames_and_the_type_not_the_message():
    address = "@".join(["maria", "mailbox.example"])
    try:
        raise ValueError(f"Key (email)=({address}) already exists")
    except ValueError:
        text = PhiSafeFormatter("%(message)s").formatException(sys.exc_info())

    assert "maria" not in text
    assert "test_a_logged_traceback_keeps_the_frames" in text and "builtins.ValueError" in text


def test_a_path_in_a_log_has_no_query_string_and_no_payment_token():
    assert access_path("/patients/?q=Maria+Lopez") == "/patients/"
    assert access_path("/pay/AbC123xyz_-tok/details/?x=1") == "/pay/…/details/"
    server = logging.LogRecord("django.server", logging.INFO, __file__, 1, '"%s" %s %s', ("GET /patients/?q=Maria HTTP/1.1", "200", "5"), None)
    RequestPathFilter().filter(server)
    assert server.getMessage() == '"GET /patients/ HTTP/1.1" 200 5'


def test_gunicorns_access_log_drops_query_strings_referrers_and_payment_tokens(tmp_path, organization):
    patients = _patients(organization, count=5)
    stack = Stack(tmp_path)
    web, url = stack.web(workers=1)
    try:
        wait_until(
            lambda: _answers(url), timeout_seconds=60, interval_seconds=0.2, describe=lambda: f"gunicorn answers:\n{web.log()}"
        )
        for patient in patients:
            referer = f"{url}/patients/?q={quote_plus(patient.full_name)}"
            for path, query in (
                ("/patients/", patient.full_name),
                ("/", patient.email),
                ("/patients/", patient.mobile_phone),
                ("/patients/99999999/", patient.date_of_birth.isoformat()),
            ):
                requests.get(f"{url}{path}", params={"q": query}, headers={"Referer": referer}, timeout=10, allow_redirects=False)
            requests.get(f"{url}/pay/SeCrEtPayToken123/", headers={"Referer": referer}, timeout=10)

        wait_until(lambda: web.log(tail=None).count("/pay/…/") >= len(patients), timeout_seconds=20, describe=web.log)
    finally:
        stack.stop()
    log = web.log(tail=None)
    assert '"GET /patients/ HTTP/1.1" 302' in log
    assert "SeCrEtPayToken123" not in log and "?" not in "".join(line for line in log.splitlines() if '"GET ' in line)
    _assert_no_phi(log, patients)


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/accounts/login/", timeout=5)
    except requests.RequestException:
        return False
    return True
