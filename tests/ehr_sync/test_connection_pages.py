"""The administrators' pages for EHR connections: who may use them, secrets that never come back,
"Sync now", the health badge, and a run's rejected records (patient data: the look is logged)."""

import datetime
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from ehr_sync import connectors
from ehr_sync.connection_selectors import Health, connection_state
from ehr_sync.connectors import ConnectorError, connector_register
from ehr_sync.credentials import credentials_read
from ehr_sync.enums import EhrConnectionKind, ImportRunStatus, ImportSource
from ehr_sync.importer import records_import
from ehr_sync.models import EhrConnection, ImportRejection, ImportRun
from ehr_sync.records import PatientRecord, RecordBatch
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess, PhiAccessPatient
from org_profile.sessions import AUTHENTICATED_AT

from ..factories import MembershipFactory, OrganizationFactory, PatientFactory

pytestmark = pytest.mark.django_db

TOKEN = "tok-very-secret-value-9876"


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    from cryptography.fernet import Fernet

    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


def _password_typed(client, minutes_ago=0):
    session = client.session
    session[AUTHENTICATED_AT] = int(time.time() - minutes_ago * 60)
    session.save()


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    _password_typed(client)
    return client


@pytest.fixture
def connection(organization):
    return EhrConnection.objects.create(
        organization=organization, name="Epic", kind=EhrConnectionKind.FHIR, base_url="https://fhir.example.test/r4",
        options={"auth": "bearer", "balance_adapter": "none", "appointment_window_days": 14},
    )


@pytest.fixture
def fhir_connector():
    saved = dict(connectors._connectors)

    def register(function):
        connector_register(EhrConnectionKind.FHIR, function)

    yield register
    connectors._connectors.clear()
    connectors._connectors.update(saved)


def _fhir_post(**overrides):
    data = {
        "name": "Epic production", "base_url": "https://fhir.example.test/r4/", "auth": "bearer", "bearer_token": TOKEN,
        "jwt_algorithm": "RS384", "appointment_window_days": "21", "balance_adapter": "none",
        "schedule": "scheduled", "sync_every_minutes": "10", "is_active": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _all_audit_text(organization):
    return json.dumps(list(AuditEvent.objects.filter(organization=organization).values_list("changes", flat=True)))


# -- who may --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role_user", ["manager", "staff_user"])
def test_managers_and_sub_account_users_cannot_see_or_change_connections(role_user, request, client, connection):
    user = request.getfixturevalue(role_user)
    client.force_login(user)
    _password_typed(client)
    before = EhrConnection.objects.values().get(pk=connection.pk)

    for url in (reverse("ehr_connections:list"), reverse("ehr_connections:detail", args=[connection.pk]),
                reverse("ehr_connections:new", args=["fhir"]), reverse("ehr_connections:edit", args=[connection.pk])):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("ehr_connections:edit", args=[connection.pk]), _fhir_post(name="Hijacked")).status_code == 403
    assert client.post(reverse("ehr_connections:sync_now", args=[connection.pk])).status_code == 403

    assert EhrConnection.objects.values().get(pk=connection.pk) == before
    assert not AuditEvent.objects.filter(action__startswith="ehr_connection").exists()
    assert b"EHR connections" not in client.get(reverse("patients:hub")).content


def test_another_organizations_connection_and_run_are_not_found(admin_client):
    other = OrganizationFactory(name="Lakeside Pediatrics")
    theirs = EhrConnection.objects.create(organization=other, name="Theirs", kind=EhrConnectionKind.FHIR, base_url="https://x.test")
    run = ImportRun.objects.create(organization=other, source=ImportSource.FHIR, connection=theirs)

    assert admin_client.get(reverse("ehr_connections:detail", args=[theirs.pk])).status_code == 404
    assert admin_client.get(reverse("ehr_connections:edit", args=[theirs.pk])).status_code == 404
    assert admin_client.post(reverse("ehr_connections:edit", args=[theirs.pk]), _fhir_post()).status_code == 404
    assert admin_client.post(reverse("ehr_connections:sync_now", args=[theirs.pk])).status_code == 404
    assert admin_client.get(reverse("ehr_connections:run_detail", args=[run.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs" and theirs.sync_requested_at is None


def test_administrators_reach_the_connections_from_the_settings_menu(admin_client):
    # The header's Settings entry opens the organization's settings, whose menu lists the connections.
    hub = admin_client.get(reverse("patients:hub")).content.decode()
    assert f'<a href="{reverse("organization_settings")}" >Settings</a>' in hub
    settings_page = admin_client.get(reverse("organization_settings")).content.decode()
    assert f'href="{reverse("ehr_connections:list")}"' in settings_page


# -- adding and changing; secrets ------------------------------------------------------------------


def test_an_administrator_adds_a_fhir_connection_its_token_encrypted_and_never_shown(admin_client, organization):
    response = admin_client.post(reverse("ehr_connections:new", args=["fhir"]), _fhir_post())

    connection = EhrConnection.objects.get()
    assert response.status_code == 302 and response.url == reverse("ehr_connections:detail", args=[connection.pk])
    assert connection.base_url == "https://fhir.example.test/r4"
    assert connection.options == {"auth": "bearer", "balance_adapter": "none", "appointment_window_days": 21}
    assert connection.sync_every_minutes == 10 and connection.next_sync_at <= timezone.now()
    assert TOKEN not in connection.credentials_encrypted
    assert credentials_read(connection) == {"bearer_token": TOKEN}
    created = AuditEvent.objects.get(action=AuditAction.EHR_CONNECTION_CREATED)
    assert created.changes["name"] == [None, "Epic production"] and created.actor_user is not None
    secrets = AuditEvent.objects.get(action=AuditAction.EHR_CONNECTION_CREDENTIALS_CHANGED)
    assert secrets.changes["set"] == ["bearer_token"] and secrets.changes["removed"] == []
    assert TOKEN not in _all_audit_text(organization)

    edit = admin_client.get(reverse("ehr_connections:edit", args=[connection.pk]))
    detail = admin_client.get(reverse("ehr_connections:detail", args=[connection.pk]))
    for page in (edit, detail):
        assert TOKEN.encode() not in page.content and TOKEN[:-4].encode() not in page.content
    assert "set (…9876)" in edit.content.decode()
    assert edit["Cache-Control"] == "private, no-store"


def test_a_secret_left_blank_is_kept_and_remove_forgets_it(admin_client, organization, connection):
    from ehr_sync.credentials import credentials_encrypt

    connection.credentials_encrypted = credentials_encrypt({"bearer_token": TOKEN})
    connection.save()
    url = reverse("ehr_connections:edit", args=[connection.pk])

    admin_client.post(url, _fhir_post(name="Epic renamed", bearer_token=""))
    connection.refresh_from_db()
    assert connection.name == "Epic renamed" and credentials_read(connection) == {"bearer_token": TOKEN}
    changed = AuditEvent.objects.get(action=AuditAction.EHR_CONNECTION_CHANGED)
    assert changed.changes["name"] == ["Epic", "Epic renamed"]
    assert not AuditEvent.objects.filter(action=AuditAction.EHR_CONNECTION_CREDENTIALS_CHANGED).exists()

    admin_client.post(url, _fhir_post(name="Epic renamed", bearer_token="", remove_bearer_token="on"))
    connection.refresh_from_db()
    assert credentials_read(connection) == {} and connection.credentials_encrypted == ""
    removed = AuditEvent.objects.get(action=AuditAction.EHR_CONNECTION_CREDENTIALS_CHANGED)
    assert removed.changes["removed"] == ["bearer_token"] and removed.changes["set"] == []
    assert TOKEN not in _all_audit_text(organization)


def test_changing_a_secret_asks_for_the_password_again_and_keeps_nothing_of_the_post(client, administrator, connection):
    client.force_login(administrator)
    _password_typed(client, minutes_ago=60)
    url = reverse("ehr_connections:edit", args=[connection.pk])

    response = client.post(url, _fhir_post(bearer_token="new-token-0001"), HTTP_REFERER=f"http://testserver{url}")

    assert response.status_code == 302 and response.url.startswith(reverse("password_confirm"))
    connection.refresh_from_db()
    assert connection.credentials_encrypted == "" and connection.name == "Epic"
    assert "new-token-0001" not in json.dumps(dict(client.session))
    # Opening the form asks first too, so that saving rarely has to.
    assert client.get(url).url.startswith(reverse("password_confirm"))


def test_a_smart_key_must_sign_the_chosen_algorithm(admin_client):
    ec_key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    post = _fhir_post(auth="smart", bearer_token="", client_id="lumapay-client", token_url="https://auth.example.test/token",
                      jwt_algorithm="RS384", private_key_pem=ec_key)

    response = admin_client.post(reverse("ehr_connections:new", args=["fhir"]), post)

    assert response.status_code == 400
    assert "RS384 needs an RSA key" in response.content.decode()
    assert ec_key.encode() not in response.content
    assert not EhrConnection.objects.exists() and not AuditEvent.objects.exists()

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    admin_client.post(reverse("ehr_connections:new", args=["fhir"]), {**post, "private_key_pem": rsa_key})
    connection = EhrConnection.objects.get()
    assert connection.options["client_id"] == "lumapay-client" and connection.options["jwt_algorithm"] == "RS384"
    assert credentials_read(connection) == {"private_key_pem": rsa_key}


def test_an_sftp_connection_needs_the_servers_host_key(admin_client):
    post = {"name": "Drop folder", "host": "sftp.clinic.test", "port": "2222", "username": "lumapay", "password": "pw-secret-5555",
            "folder": "/outbox", "host_key": "", "schedule": "scheduled", "sync_every_minutes": "5", "is_active": "on"}

    refused = admin_client.post(reverse("ehr_connections:new", args=["sftp"]), post)
    assert refused.status_code == 400 and "host key" in refused.content.decode()
    assert not EhrConnection.objects.exists()

    # A fingerprint is not enough: the drop folder checks the key itself.
    fingerprint = admin_client.post(
        reverse("ehr_connections:new", args=["sftp"]), {**post, "host_key": "SHA256:" + "A" * 43}
    )
    assert fingerprint.status_code == 400 and "paste the key itself" in fingerprint.content.decode()
    assert not EhrConnection.objects.exists()

    key_line = "sftp.clinic.test ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHfX1HDKpJ0Gm6PqKC5hPUPcn9hU2LWxFp5wd5YQdsmm"
    admin_client.post(reverse("ehr_connections:new", args=["sftp"]), {**post, "host_key": key_line})
    connection = EhrConnection.objects.get()
    assert connection.base_url == "sftp://sftp.clinic.test:2222"
    assert connection.options == {"username": "lumapay", "host_key": key_line, "folder": "/outbox"}
    assert credentials_read(connection) == {"password": "pw-secret-5555"}


def test_an_hl7_facility_maps_to_one_organization_only(admin_client, organization):
    other = OrganizationFactory(name="Lakeside Pediatrics")
    EhrConnection.objects.create(organization=other, name="ADT", kind=EhrConnectionKind.HL7_MLLP, options={"sending_facility": "RIVERSIDE"})

    response = admin_client.post(
        reverse("ehr_connections:new", args=["hl7_mllp"]), {"name": "ADT feed", "sending_facility": "RIVERSIDE", "is_active": "on"}
    )

    assert response.status_code == 400 and "already has an HL7 connection" in response.content.decode()
    assert not EhrConnection.objects.filter(organization=organization).exists()


# -- sync now and the badge ---------------------------------------------------------------------------


def test_sync_now_is_audited_queues_the_sync_and_its_run_shows(admin_client, administrator, connection, fhir_connector):
    def one_patient(connection, run):
        record = PatientRecord(external_id="P-1", first_name="Ana", last_name="Ruiz", date_of_birth=datetime.date(1990, 1, 2),
                               source_updated_at=timezone.now(), reference="Patient/P-1")
        records_import(run=run, batch=RecordBatch(patients=[record]))

    fhir_connector(one_patient)

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(reverse("ehr_connections:sync_now", args=[connection.pk]))

    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.EHR_SYNC_REQUESTED)
    assert event.actor_user == administrator and event.changes == {"connection_id": connection.pk, "connection": "Epic"}
    run = ImportRun.objects.get(connection=connection)
    assert run.started_by == administrator and run.status == ImportRunStatus.SUCCEEDED and run.created == 1
    page = admin_client.get(reverse("ehr_connections:detail", args=[connection.pk])).content.decode()
    assert administrator.email in page and "Healthy" in page and reverse("ehr_connections:run_detail", args=[run.pk]) in page


def test_while_a_sync_waits_or_runs_the_page_polls_and_sync_now_is_refused(admin_client, connection, monkeypatch):
    from celery import current_app

    queued = []
    monkeypatch.setattr(current_app.tasks["ehr_sync.tasks.ehr_connection_sync"], "delay", lambda *args: queued.append(args))
    url = reverse("ehr_connections:detail", args=[connection.pk])
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post(reverse("ehr_connections:sync_now", args=[connection.pk]))
    assert len(queued) == 1

    waiting = admin_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="connection-activity")
    assert waiting.templates[0].name == "ehr_sync/connections/_activity.html"
    assert 'hx-trigger="every 2s"' in waiting.content.decode() and "Waiting to start" in waiting.content.decode()

    EhrConnection.objects.filter(pk=connection.pk).update(
        sync_lease_until=timezone.now() + datetime.timedelta(minutes=5), last_run_started_at=timezone.now()
    )
    assert "Syncing now" in admin_client.get(url).content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        admin_client.post(reverse("ehr_connections:sync_now", args=[connection.pk]))
    assert len(queued) == 1 and AuditEvent.objects.filter(action=AuditAction.EHR_SYNC_REQUESTED).count() == 1

    EhrConnection.objects.filter(pk=connection.pk).update(sync_lease_until=None)
    assert "every 2s" not in admin_client.get(url).content.decode()


def test_the_health_badge_in_words(admin_client, connection, fhir_connector):
    now = timezone.now()
    assert connection_state(connection).health == Health.NEVER
    assert "Never synced" in admin_client.get(reverse("ehr_connections:list")).content.decode()

    def refuses(connection, run):
        raise ConnectorError("The FHIR server refused the token (401).")

    fhir_connector(refuses)
    connectors.connection_sync(connection_id=connection.pk)
    listing = admin_client.get(reverse("ehr_connections:list")).content.decode()
    assert "Failing since" in listing and "The FHIR server refused the token (401)." in listing

    EhrConnection.objects.filter(pk=connection.pk).update(failing_since=None, last_error="", last_success_at=now)
    assert "Healthy" in admin_client.get(reverse("ehr_connections:list")).content.decode()

    EhrConnection.objects.filter(pk=connection.pk).update(is_active=False)
    listing = admin_client.get(reverse("ehr_connections:list")).content.decode()
    assert "Paused" in listing and "Healthy" not in listing


# -- a run's rejected records ------------------------------------------------------------------------


def test_a_runs_rejections_are_listed_logged_as_a_phi_access_and_not_cached(admin_client, administrator, organization, connection):
    patient = PatientFactory(organization=organization, external_ehr_id="P-7")
    run = ImportRun.objects.create(organization=organization, source=ImportSource.FHIR, connection=connection,
                                   status=ImportRunStatus.SUCCEEDED_WITH_REJECTIONS, rejected=2, finished_at=timezone.now())
    ImportRejection.objects.create(organization=organization, run=run, kind="patient", reference="Patient/P-7/_history/2",
                                   field="email", value="ana.at.example", reason="This is not an e-mail address.")
    ImportRejection.objects.create(organization=organization, run=run, kind="patient", reference="Patient/NEW-1",
                                   field="date_of_birth", value="2999-01-01", reason="The date of birth is in the future.")

    response = admin_client.get(reverse("ehr_connections:run_detail", args=[run.pk]))

    page = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    for text in ("Patient/P-7/_history/2", "ana.at.example", "This is not an e-mail address.", "2999-01-01"):
        assert text in page
    access = PhiAccess.objects.get(page="ehr_connections:run_detail")
    assert access.actor_user == administrator and access.organization == organization
    # The stored patient a rejection names is listed; the new one is not a patient in LumaPay.
    assert list(PhiAccessPatient.objects.filter(access=access).values_list("patient_id", flat=True)) == [patient.pk]


def test_a_run_without_rejections_records_no_phi_access(admin_client, organization, connection):
    run = ImportRun.objects.create(organization=organization, source=ImportSource.FHIR, connection=connection)
    assert admin_client.get(reverse("ehr_connections:run_detail", args=[run.pk])).status_code == 200
    assert not PhiAccess.objects.exists()


def test_a_manager_of_the_same_clinic_cannot_read_a_runs_rejections(client, organization, connection):
    manager = MembershipFactory(organization=organization, role="manager").user
    run = ImportRun.objects.create(organization=organization, source=ImportSource.FHIR, connection=connection)
    client.force_login(manager)
    assert client.get(reverse("ehr_connections:run_detail", args=[run.pk])).status_code == 403


def test_the_operators_admin_never_shows_a_connections_credentials(client, connection):
    from ehr_sync.credentials import credentials_encrypt

    from ..factories import UserFactory

    connection.credentials_encrypted = credentials_encrypt({"bearer_token": TOKEN})
    connection.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.get(reverse("admin:ehr_sync_ehrconnection_change", args=[connection.pk]))

    assert response.status_code == 200 and b"Epic" in response.content
    assert TOKEN.encode() not in response.content
    assert connection.credentials_encrypted.encode() not in response.content


def test_the_patient_profile_says_where_the_details_came_from(admin_client, organization, connection):
    run = ImportRun.objects.create(organization=organization, source=ImportSource.FHIR, connection=connection,
                                   status=ImportRunStatus.SUCCEEDED, finished_at=timezone.now())
    patient = PatientFactory(organization=organization, last_import_run=run)

    page = admin_client.get(reverse("patients:profile", args=[patient.pk])).content.decode()

    assert "Details from" in page and "FHIR sync (Epic)" in page
    assert reverse("ehr_connections:run_detail", args=[run.pk]) in page
    by_hand = PatientFactory(organization=organization)
    assert "Details from" not in admin_client.get(reverse("patients:profile", args=[by_hand.pk])).content.decode()
