"""Running a connection's sync (ehr_sync/connectors.py) and its credentials at rest (credentials.py)."""

import datetime

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.utils import timezone

from ehr_sync import connectors
from ehr_sync.connectors import ConnectorError, connection_sync, connector_register
from ehr_sync.credentials import credentials_encrypt, credentials_hint, credentials_read
from ehr_sync.enums import EhrConnectionKind, ImportRunStatus
from ehr_sync.importer import records_import
from ehr_sync.models import EhrConnection, Patient
from ehr_sync.records import PatientRecord, RecordBatch
from lumapay.errors import ApplicationError


@pytest.fixture
def connection(organization):
    return EhrConnection.objects.create(
        organization=organization, name="Clinic EHR", kind=EhrConnectionKind.FHIR, base_url="http://127.0.0.1:1/fhir"
    )


@pytest.fixture
def fhir_connector():
    """Swap in a connector for FHIR connections for one test, and put back what was registered."""
    saved = dict(connectors._connectors)
    calls = []

    def register(function):
        def wrapped(connection, run):
            calls.append(connection.pk)
            return function(connection, run)

        connector_register(EhrConnectionKind.FHIR, wrapped)
        return calls

    yield register
    connectors._connectors.clear()
    connectors._connectors.update(saved)


def one_patient(connection, run):
    moment = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
    record = PatientRecord(
        external_id="P-1",
        first_name="Ana",
        last_name="Ruiz",
        date_of_birth=datetime.date(1990, 1, 2),
        source_updated_at=moment,
        reference="Patient/P-1",
    )
    records_import(run=run, batch=RecordBatch(patients=[record]))


def test_a_sync_records_its_run_and_the_connection_is_healthy(connection, fhir_connector):
    fhir_connector(one_patient)
    run = connection_sync(connection_id=connection.pk)
    assert run.status == ImportRunStatus.SUCCEEDED and run.created == 1
    assert Patient.objects.filter(external_ehr_id="P-1").exists()
    connection.refresh_from_db()
    assert connection.last_success_at == run.finished_at
    assert connection.failing_since is None and connection.sync_lease_until is None
    assert connection.next_sync_at > timezone.now()


def test_a_failing_sync_marks_the_connection_failing_since_its_first_failure(connection, fhir_connector):
    def refuses(connection, run):
        raise ConnectorError("The FHIR server refused the token (401).")

    fhir_connector(refuses)
    first = connection_sync(connection_id=connection.pk)
    second = connection_sync(connection_id=connection.pk)
    assert first.status == second.status == ImportRunStatus.FAILED
    connection.refresh_from_db()
    assert connection.failing_since == first.started_at
    assert connection.last_error == "The FHIR server refused the token (401)."
    fhir_connector(one_patient)
    connection_sync(connection_id=connection.pk)
    connection.refresh_from_db()
    assert connection.failing_since is None and connection.last_error == ""


def test_one_sync_of_a_connection_at_a_time(connection, fhir_connector):
    calls = fhir_connector(one_patient)
    EhrConnection.objects.filter(pk=connection.pk).update(sync_lease_until=timezone.now() + datetime.timedelta(minutes=5))
    assert connection_sync(connection_id=connection.pk) is None
    assert calls == []
    # A lease left by a killed worker runs out.
    EhrConnection.objects.filter(pk=connection.pk).update(sync_lease_until=timezone.now() - datetime.timedelta(seconds=1))
    assert connection_sync(connection_id=connection.pk) is not None


def test_credentials_are_encrypted_at_rest_and_rotate(connection, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EHR_CREDENTIALS_KEYS = [old_key]
    connection.credentials_encrypted = credentials_encrypt({"bearer_token": "tok-secret-1234"})
    connection.save()
    assert "tok-secret" not in EhrConnection.objects.values_list("credentials_encrypted", flat=True).get()
    assert credentials_read(connection) == {"bearer_token": "tok-secret-1234"}
    assert credentials_hint(connection) == {"bearer_token": "…1234"}

    settings.EHR_CREDENTIALS_KEYS = [new_key, old_key]
    call_command("rotate_ehr_credentials")
    connection.refresh_from_db()
    settings.EHR_CREDENTIALS_KEYS = [new_key]
    assert credentials_read(connection) == {"bearer_token": "tok-secret-1234"}

    settings.EHR_CREDENTIALS_KEYS = [old_key]
    with pytest.raises(ApplicationError, match="cannot be decrypted"):
        credentials_read(connection)


def test_production_needs_a_key(settings):
    settings.DEBUG = False
    settings.EHR_CREDENTIALS_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="EHR_CREDENTIALS_KEYS"):
        credentials_encrypt({"password": "x"})
