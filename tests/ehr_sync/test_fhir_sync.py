"""The FHIR R4 connector (ehr_sync/fhir_sync.py) against a real sekmet-fhir server on 127.0.0.1,
through tests/fhir_server.py's proxy, which injects the failures sekmet cannot produce (401, 429 with
Retry-After, 500, a late answer, a page cut short). Each test starts its own server with its own data."""

import datetime
import json
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from ehr_sync.connectors import connection_sync
from ehr_sync.credentials import credentials_encrypt
from ehr_sync.demo_fhir_server import (
    DEMO_BALANCE_EXTENSION_URL,
    DEMO_SMS_CONSENT_EXTENSION_URL,
    demo_account,
    demo_appointment,
    demo_coverage,
    demo_fhir_put,
    demo_fhir_seed,
    demo_patient,
)
from ehr_sync.demo_fhir_server import main as demo_fhir_main
from ehr_sync.enums import AppointmentStatus, EhrConnectionKind, ImportRunStatus
from ehr_sync.models import Appointment, Balance, EhrConnection, ImportRejection, Patient
from tests.factories import LocationFactory
from tests.fhir_server import fhir_test_server_start, fhir_test_server_stop

NOW = timezone.now()
TOMORROW = (NOW + datetime.timedelta(days=1)).replace(hour=15, minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def fhir():
    server = fhir_test_server_start()
    yield server
    fhir_test_server_stop(server)


@pytest.fixture
def locations(organization):
    return {
        "downtown": LocationFactory(organization=organization, name="Downtown Clinic", ehr_location_id="loc-downtown"),
        # No EHR id given: matched by the name the EHR shows.
        "northside": LocationFactory(organization=organization, name="Northside Clinic"),
    }


def clinic_data(patients=3):
    """Patients p-1…, each with a booked visit tomorrow at Downtown and a past one at Northside,
    a coverage with a $25 copay and an account owing $120.50."""
    resources = [
        {"resourceType": "Location", "id": "loc-downtown", "name": "Downtown Clinic"},
        {"resourceType": "Location", "id": "loc-northside", "name": "Northside Clinic"},
    ]
    for n in range(1, patients + 1):
        resources.append(
            demo_patient(f"p-{n}", first_name=f"Ana{n}", last_name="Ruiz", birth_date=datetime.date(1990, 1, n),
                         email=f"ana{n}@example.org", mobile_phone=f"+1804555{n:04d}", language="es" if n == 1 else "en",
                         sms_consent=n == 1)
        )
        resources.append(
            demo_appointment(f"a-{n}-next", patient_id=f"p-{n}", starts_at=TOMORROW, status="booked",
                             location=("loc-downtown", "Downtown Clinic"), practitioner=("pr-1", "Dr. Alex Chen"))
        )
        resources.append(
            demo_appointment(f"a-{n}-past", patient_id=f"p-{n}", starts_at=NOW - datetime.timedelta(days=20),
                             status="fulfilled", location=("loc-northside", "Northside Clinic"))
        )
        resources.append(demo_coverage(f"cov-{n}", patient_id=f"p-{n}", copay_cents=2500))
        resources.append(demo_account(f"acc-{n}", patient_id=f"p-{n}", balance_cents=12050))
    return resources


def connection_for(organization, fhir, **options):
    return EhrConnection.objects.create(
        organization=organization,
        name="Clinic EHR",
        kind=EhrConnectionKind.FHIR,
        base_url=fhir.base_url,
        options={
            "balance_extension_url": DEMO_BALANCE_EXTENSION_URL,
            "sms_consent_extension_url": DEMO_SMS_CONSENT_EXTENSION_URL,
            "timeout_seconds": 5,
            **options,
        },
    )


def searches(fhir, resource_type):
    """The query of each search the sync made for ``resource_type``, as a dict of lists."""
    return [parse_qs(urlparse(request.split(" ", 1)[1]).query) for request in fhir.proxy.asked(f"GET /fhir/{resource_type}?")]


def sync(connection):
    run = connection_sync(connection_id=connection.pk)
    connection.refresh_from_db()
    return run


def test_a_full_sync_brings_patients_appointments_copays_and_balances(organization, locations, fhir):
    demo_fhir_seed(fhir.local_url, clinic_data(3))
    connection = connection_for(organization, fhir)

    run = sync(connection)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    ana = Patient.objects.get(organization=organization, external_ehr_id="p-1")
    assert (ana.first_name, ana.last_name, ana.date_of_birth) == ("Ana1", "Ruiz", datetime.date(1990, 1, 1))
    assert (ana.email, ana.mobile_phone, ana.preferred_language) == ("ana1@example.org", "+18045550001", "es")
    assert ana.sms_consent is True and ana.ehr_version == "1"
    assert Patient.objects.get(external_ehr_id="p-2").sms_consent is False
    upcoming = Appointment.objects.get(external_ehr_id="a-1-next")
    assert (upcoming.status, upcoming.location, upcoming.provider_name) == ("booked", locations["downtown"], "Dr. Alex Chen")
    assert upcoming.starts_at == TOMORROW and upcoming.copay_cents == 2500
    past = Appointment.objects.get(external_ehr_id="a-1-past")
    # Northside has no EHR id here: matched by the name on the reference; a past visit gets no copay.
    assert (past.status, past.location, past.copay_cents) == ("fulfilled", locations["northside"], 0)
    assert Balance.objects.get(patient=ana).amount_due_cents == 12050
    assert run.counts_by_kind["patient"]["created"] == 3 and run.counts_by_kind["appointment"]["created"] == 6
    assert run.counts_by_kind["copay"]["updated"] == 3 and run.counts_by_kind["balance"]["created"] == 3
    assert set(connection.watermarks) == {"Patient", "Appointment", "Coverage", "Account"}


def test_paging_is_followed_across_several_pages(organization, locations, fhir):
    demo_fhir_seed(fhir.local_url, clinic_data(12))
    connection = connection_for(organization, fhir, page_size=5)

    run = sync(connection)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    assert Patient.objects.filter(organization=organization).count() == 12
    assert Appointment.objects.filter(organization=organization).count() == 24
    patient_pages = [query for query in searches(fhir, "Patient") if "_id" not in query]
    assert [query.get("_offset", ["0"])[0] for query in patient_pages] == ["0", "5", "10"]


def test_a_patient_changed_on_the_server_arrives_on_the_next_sync(organization, locations, fhir):
    demo_fhir_seed(fhir.local_url, clinic_data(3))
    connection = connection_for(organization, fhir)
    sync(connection)
    watermark = connection.watermarks["Patient"]

    changed = demo_patient("p-2", first_name="Anabel", last_name="Ruiz-Soto", birth_date=datetime.date(1990, 1, 2),
                           email="anabel@example.org", mobile_phone="+18045550002", language="es")
    stored = demo_fhir_put(fhir.local_url, changed)
    fhir.proxy.forget()
    run = sync(connection)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    patient = Patient.objects.get(external_ehr_id="p-2")
    assert (patient.first_name, patient.last_name, patient.email, patient.preferred_language) == (
        "Anabel", "Ruiz-Soto", "anabel@example.org", "es")
    assert patient.ehr_version == stored["meta"]["versionId"] == "2"
    assert run.counts_by_kind["patient"]["updated"] == 1
    # Asked from the last watermark less the five minutes of overlap, nothing older.
    expected = datetime.datetime.fromisoformat(watermark) - datetime.timedelta(minutes=5)
    (query,) = [q for q in searches(fhir, "Patient") if "_id" not in q]
    asked = datetime.datetime.fromisoformat(query["_lastUpdated"][0].removeprefix("ge"))
    assert asked == expected
    assert connection.watermarks["Patient"] >= stored["meta"]["lastUpdated"]


def test_an_incremental_sync_reads_only_what_changed(organization, locations, fhir):
    demo_fhir_seed(fhir.local_url, clinic_data(5))
    # No overlap, so what is read is exactly what changed (the seed is seconds old).
    connection = connection_for(organization, fhir, watermark_overlap_seconds=0, appointment_window_days_back=0,
                                appointment_window_days=0)
    sync(connection)
    demo_fhir_put(fhir.local_url, demo_patient("p-4", first_name="Ines", last_name="Ruiz", birth_date=datetime.date(1990, 1, 4)))

    run = sync(connection)

    assert run.counts_by_kind["patient"] == {**run.counts_by_kind["patient"], "received": 1, "updated": 1}
    assert "appointment" not in run.counts_by_kind
    assert Patient.objects.get(external_ehr_id="p-4").first_name == "Ines"


def test_a_cancelled_appointment_arrives(organization, locations, fhir):
    demo_fhir_seed(fhir.local_url, clinic_data(2))
    connection = connection_for(organization, fhir)
    sync(connection)
    assert Appointment.objects.get(external_ehr_id="a-2-next").status == AppointmentStatus.BOOKED

    demo_fhir_put(fhir.local_url, demo_appointment("a-2-next", patient_id="p-2", starts_at=TOMORROW, status="cancelled",
                                                   location=("loc-downtown", "Downtown Clinic")))
    fhir.proxy.forget()
    run = sync(connection)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    assert Appointment.objects.get(external_ehr_id="a-2-next").status == AppointmentStatus.CANCELLED
    # Read twice (changed since the watermark, and in the window around today), imported once; the
    # other visit of tomorrow, read again by the window in the version we hold, is passed over.
    assert run.counts_by_kind["appointment"]["received"] == run.counts_by_kind["appointment"]["updated"] == 1
    window = [q for q in searches(fhir, "Appointment") if "date" in q]
    assert window and sorted(window[0]["date"])[0].startswith("ge")


FAILURES = {
    "401": (dict(match="/fhir/Patient?", status=401), "refused LumaPay's credentials for the Patient search (401)"),
    "500": (dict(match="/fhir/Appointment?", status=500), "answered 500 to the Appointment search"),
    "429 for good": (dict(match="/fhir/Patient?", status=429, headers={"Retry-After": "0"}, times=0),
                     "still refused the Patient search (429) after 3 waits"),
    "429 asking too long": (dict(match="/fhir/Patient?", status=429, headers={"Retry-After": "3600"}),
                            "asked LumaPay to wait 3600 s before the Patient search (429)"),
    "timeout": (dict(match="/fhir/Coverage?", delay_seconds=3), "did not answer the Coverage search within 1 s"),
    "page 2 fails": (dict(match="_offset=2", status=502), "answered 502 to the Patient search"),
    "page 2 cut short": (dict(match="_offset=2", truncate=True), "answer to the Patient search was cut short"),
}


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_failing_server_fails_the_run_and_keeps_the_watermark(organization, locations, fhir, failure):
    fault, message = FAILURES[failure]
    demo_fhir_seed(fhir.local_url, clinic_data(4))
    connection = connection_for(organization, fhir, page_size=2, timeout_seconds=1, watermark_overlap_seconds=0)
    sync(connection)
    watermarks = dict(connection.watermarks)
    demo_fhir_put(fhir.local_url, demo_patient("p-1", first_name="Anita", last_name="Ruiz", birth_date=datetime.date(1990, 1, 1)))
    for n in (2, 3, 4):  # enough changes for a second page
        demo_fhir_put(fhir.local_url, demo_patient(f"p-{n}", first_name=f"Changed{n}", last_name="Ruiz", birth_date=datetime.date(1990, 1, n)))

    fhir.proxy.fail(**fault)
    failed = sync(connection)

    assert failed.status == ImportRunStatus.FAILED
    assert message in failed.error
    assert connection.watermarks == watermarks
    assert connection.last_error == failed.error and connection.failing_since == failed.started_at

    fhir.proxy.heal()
    healed = sync(connection)
    assert healed.status == ImportRunStatus.SUCCEEDED, healed.error
    assert Patient.objects.get(external_ehr_id="p-1").first_name == "Anita"
    assert Patient.objects.get(external_ehr_id="p-4").first_name == "Changed4"
    assert connection.watermarks["Patient"] > watermarks["Patient"]


def test_retry_after_is_honoured_and_the_sync_goes_on(organization, locations, fhir, monkeypatch):
    demo_fhir_seed(fhir.local_url, clinic_data(2))
    waits = []
    monkeypatch.setattr("ehr_sync.fhir_sync.retry_wait", waits.append)
    fhir.proxy.fail("/fhir/Patient?", status=429, headers={"Retry-After": "2"}, times=2)
    connection = connection_for(organization, fhir)

    run = sync(connection)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    assert waits == [2.0, 2.0]
    assert len(fhir.proxy.asked("GET /fhir/Patient?")) == 3
    assert Patient.objects.filter(organization=organization).count() == 2


def test_an_invalid_resource_is_rejected_in_the_ehrs_words_and_the_rest_arrive(organization, locations):
    fhir = fhir_test_server_start(validate_inbound=False)  # a faulty EHR stores what R4 forbids
    try:
        data = clinic_data(2)
        bad = demo_patient("p-bad", first_name="Bad", last_name="Date", birth_date=datetime.date(1990, 1, 1))
        bad["birthDate"] = "1990-13-45"
        demo_fhir_seed(fhir.local_url, [*data, bad])
        connection = connection_for(organization, fhir)

        run = sync(connection)
    finally:
        fhir_test_server_stop(fhir)

    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS
    (rejection,) = ImportRejection.objects.filter(run=run)
    assert (rejection.kind, rejection.reference, rejection.field, rejection.value) == (
        "patient", "Patient/p-bad/_history/1", "birthDate", "1990-13-45")
    assert "Not a valid FHIR R4 Patient" in rejection.reason
    assert not Patient.objects.filter(external_ehr_id="p-bad").exists()
    assert Patient.objects.filter(organization=organization).count() == 2
    assert run.counts_by_kind["patient"]["rejected"] == 1


def test_smart_backend_services_signs_in_once_and_reuses_the_token(organization, locations):
    key = ec.generate_private_key(ec.SECP384R1())
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": "lumapay-1", "alg": "ES384", "use": "sig"})
    fhir = fhir_test_server_start(smart_clients=[{"client_id": "lumapay-test", "jwks": {"keys": [public_jwk]}, "scopes": "system/*.*"}])
    try:
        demo_fhir_seed(fhir.local_url, clinic_data(2), headers={"Authorization": f"Bearer {_seed_token(fhir, key)}"})
        fhir.proxy.forget()
        connection = connection_for(
            organization, fhir, client_id="lumapay-test", token_url=f"{fhir.proxy.url}/auth/token",
            key_id="lumapay-1",
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        connection.credentials_encrypted = credentials_encrypt({"private_key_pem": pem.decode()})
        connection.save()

        first, second = sync(connection), sync(connection)
    finally:
        fhir_test_server_stop(fhir)

    assert first.status == second.status == ImportRunStatus.SUCCEEDED, (first.error, second.error)
    assert Patient.objects.filter(organization=organization).count() == 2
    assert len(fhir.proxy.asked("POST /auth/token")) == 1


def test_a_wrong_bearer_token_fails_clearly(organization, locations):
    fhir = fhir_test_server_start(bearer_tokens=["the-right-token"])
    try:
        connection = connection_for(organization, fhir)
        connection.credentials_encrypted = credentials_encrypt({"bearer_token": "a-wrong-token"})
        connection.save()
        run = sync(connection)
    finally:
        fhir_test_server_stop(fhir)

    assert run.status == ImportRunStatus.FAILED
    assert run.error.startswith("The FHIR server refused LumaPay's credentials for the Patient search (401)")
    assert "a-wrong-token" not in run.error
    assert connection.watermarks == {}


def _seed_token(fhir, key):
    """An access token for seeding the SMART-protected server, got the way the sync gets its own."""
    import time
    import uuid

    import requests

    token_url = f"{fhir.proxy.url}/auth/token"
    assertion = jwt.encode(
        {"iss": "lumapay-test", "sub": "lumapay-test", "aud": token_url, "exp": int(time.time()) + 120,
         "jti": uuid.uuid4().hex}, key, algorithm="ES384", headers={"kid": "lumapay-1"})
    answer = requests.post(
        f"{fhir.server.local_url.removesuffix('/fhir')}/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.*",
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
              "client_assertion": assertion}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.mark.parametrize(
    ("options", "extension", "cents"),
    [
        ({"balance_extension_url": "https://ehr.example/balance"},
         {"url": "https://ehr.example/balance", "valueMoney": {"value": 120.5, "currency": "USD"}}, 12050),
        # ModMed names its extension outstandingBalance (Money) without publishing the full URL.
        ({"balance_adapter": "modmed"},
         {"url": "https://fhir.modmed.example/ext/outstandingBalance", "valueMoney": {"value": 45}}, 4500),
        ({"balance_adapter": "hl7_r5_balance"},
         {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Account.balance",
          "extension": [{"url": "amount", "valueMoney": {"value": 19.99, "currency": "USD"}}]}, 1999),
    ],
    ids=["named extension", "modmed", "hl7 r5 balance"],
)
def test_balance_adapters_read_the_vendors_extension(options, extension, cents):
    from ehr_sync.fhir_sync import _balance_amount, _balance_matcher, _cents

    matcher = _balance_matcher(options)
    assert matcher(extension) and not matcher({"url": "https://ehr.example/other", "valueMoney": {"value": 1}})
    assert _cents(_balance_amount(extension))[0] == cents


def test_oracle_health_needs_its_extension_url_named():
    from ehr_sync.connectors import ConnectorError
    from ehr_sync.fhir_sync import _balance_matcher

    with pytest.raises(ConnectorError, match="set balance_extension_url"):
        _balance_matcher({"balance_adapter": "oracle_health"})
    assert _balance_matcher({"balance_adapter": "oracle_health", "balance_extension_url": "https://x/ext"})({"url": "https://x/ext"})


def test_the_demo_commands_book_check_in_and_cancel_visits_that_the_next_sync_brings_in(organization, locations, fhir, capsys, monkeypatch):
    """The README's walk of automatic collection books a visit on the demo EHR, checks the patient in
    and cancels another, each with `python -m ehr_sync.demo_fhir_server`; each arrives on the next sync."""
    demo_fhir_seed(fhir.base_url, clinic_data(patients=2))
    connection = connection_for(organization, fhir)
    sync(connection)
    monkeypatch.setenv("DEMO_FHIR_URL", fhir.base_url)

    assert demo_fhir_main(["book-appointment", "p-1", "--hours-from-now", "30"]) == 0
    booked_id = capsys.readouterr().out.split("Appointment/", 1)[1].split(" ", 1)[0]
    sync(connection)
    visit = Appointment.objects.get(organization=organization, external_ehr_id=booked_id)
    assert visit.status == AppointmentStatus.BOOKED
    assert visit.copay_cents == 2500
    assert abs(visit.starts_at - (timezone.now() + datetime.timedelta(hours=30))) < datetime.timedelta(minutes=2)
    assert visit.location == locations["downtown"]

    assert demo_fhir_main(["change-appointment", booked_id, "--status", "arrived"]) == 0
    assert demo_fhir_main(["change-appointment", "a-2-next", "--status", "cancelled"]) == 0
    sync(connection)
    assert Appointment.objects.get(pk=visit.pk).status == AppointmentStatus.ARRIVED
    assert Appointment.objects.get(organization=organization, external_ehr_id="a-2-next").status == AppointmentStatus.CANCELLED

    assert demo_fhir_main(["change-appointment", "no-such-visit", "--status", "arrived"]) == 1
    assert "The demo EHR has no Appointment/no-such-visit." in capsys.readouterr().err
