"""The SFTP drop folder (uploads/sftp_drop.py), against a real SFTP server on 127.0.0.1
(tests/sftp_server.py), run the way the schedule runs it: ``connection_sync``, which records the
run and the connection's health."""

import datetime
import io
import os
import re
import socket
import threading

import asyncssh
import openpyxl
import pytest
from cryptography.fernet import Fernet

from ehr_sync.connectors import connection_sync
from ehr_sync.credentials import credentials_encrypt
from ehr_sync.enums import EhrConnectionKind, ImportRunStatus
from ehr_sync.models import EhrConnection, ImportRejection, Patient
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from tests.sftp_server import PASSWORD, USERNAME, sftp_server_running
from uploads.sftp_drop import kind_of_file_name

HEADER = "external_id,first_name,last_name,date_of_birth,email,mobile_phone\n"
TWO_PATIENTS = HEADER + "P-1,Ana,Ruiz,1990-01-02,ana@example.com,\nP-2,Ben,Okafor,1985-06-30,,\n"


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "server"
    (root / "drop").mkdir(parents=True)
    with sftp_server_running(root) as running:
        yield running


@pytest.fixture
def drop(server):
    return server.root / "drop"


def connection_to(server, organization, *, credentials=None, **options):
    return EhrConnection.objects.create(
        organization=organization,
        name="Nightly export",
        kind=EhrConnectionKind.SFTP,
        base_url=server.base_url,
        options={
            "folder": "drop",
            "username": USERNAME,
            "host_key": server.host_key_line,
            # The two looks for files still being written, back to back: the tests that need a
            # file to change between them change it from the server's side as it is listed.
            "settle_seconds": 0,
            **options,
        },
        credentials_encrypted=credentials_encrypt(credentials or {"password": PASSWORD}),
    )


@pytest.fixture
def connection(server, organization):
    return connection_to(server, organization)


def put(folder, name, text, *, minutes_ago=10):
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    moment = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=minutes_ago)).timestamp()
    os.utime(path, (moment, moment))
    return path


def names(folder):
    return sorted(path.name for path in folder.iterdir() if path.is_file()) if folder.exists() else []


def xlsx(rows):
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# -- picking files up -------------------------------------------------------------------------------


def test_files_are_imported_oldest_first_and_moved_to_done(server, drop, connection):
    put(drop, "patients-b.xlsx", xlsx([HEADER.strip().split(","), ["P-3", "Cleo", "Park", "1970-03-04", "", ""]]), minutes_ago=5)
    put(drop, "Patients-a.csv", TWO_PATIENTS, minutes_ago=30)
    put(drop, ".patients-upload.csv", TWO_PATIENTS)  # hidden: an uploader's temporary name
    put(drop, "patients.csv.part", TWO_PATIENTS)  # not a .csv yet
    put(drop, "README.txt", "Drop files here.")

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error
    assert (run.received, run.created, run.rejected) == (3, 3, 0)
    assert run.counts_by_kind == {
        "patient": {"received": 3, "created": 3, "updated": 0, "unchanged": 0, "older": 0, "rejected": 0}
    }
    assert sorted(Patient.objects.values_list("external_ehr_id", "first_name")) == [
        ("P-1", "Ana"), ("P-2", "Ben"), ("P-3", "Cleo")
    ]
    assert server.opened == ["Patients-a.csv", "patients-b.xlsx"]
    assert names(drop / "done") == ["Patients-a.csv", "patients-b.xlsx"]
    assert (drop / "done" / "Patients-a.csv").read_text() == TWO_PATIENTS
    assert names(drop) == [".patients-upload.csv", "README.txt", "patients.csv.part"]
    assert not (drop / "failed").exists()
    connection.refresh_from_db()
    assert connection.last_success_at == run.finished_at and connection.last_error == ""


def test_an_empty_folder_is_a_successful_sync(drop, connection):
    run = connection_sync(connection_id=connection.pk)
    assert run.status == ImportRunStatus.SUCCEEDED and run.received == 0
    assert names(drop) == [] and not (drop / "done").exists()


def test_a_half_bad_file_imports_its_valid_rows_and_lists_the_others(drop, connection):
    put(
        drop,
        "patients.csv",
        HEADER
        + "P-1,Ana,Ruiz,1990-01-02,,\n"
        + "P-2,Ben,Okafor,1985-13-45,,\n"  # the reader cannot read the date
        + "P-3,,Park,1970-03-04,,\n"  # the importer refuses a patient without a first name
        + "P-4,Dee,Moss,1980-05-06,not-an-address,\n",
    )

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS, run.error
    assert (run.received, run.created, run.rejected) == (4, 1, 3)
    assert list(Patient.objects.values_list("external_ehr_id", flat=True)) == ["P-1"]
    assert list(ImportRejection.objects.filter(run=run).order_by("reference").values_list("reference", "field")) == [
        ("patients.csv, row 3", "date_of_birth"),
        ("patients.csv, row 4", "first_name"),
        ("patients.csv, row 5", "email"),
    ]
    assert names(drop / "done") == ["patients.csv", "patients.csv.problems.txt"]
    problems = (drop / "done" / "patients.csv.problems.txt").read_text()
    assert problems.splitlines()[0] == "LumaPay imported patients.csv, except 3 rows with the problems below."
    lines = problems.splitlines()[3:]
    assert len(lines) == 3
    assert lines[0].startswith("row 3, column date_of_birth") and "1985-13-45" in lines[0]
    assert lines[0].endswith(ImportRejection.objects.get(run=run, field="date_of_birth").reason)
    assert lines[1] == "row 4, column first_name: The patient's first name is missing."
    assert lines[2] == "row 5, column email (“not-an-address”): This is not an e-mail address."


def test_all_or_nothing_sends_a_file_with_problems_to_failed_and_imports_none_of_it(server, drop, organization):
    connection = connection_to(server, organization, all_or_nothing=True)
    put(drop, "patients.csv", HEADER + "P-1,Ana,Ruiz,1990-01-02,,\nP-2,Ben,Okafor,1985-13-45,,\n")

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS
    assert (run.created, run.rejected) == (0, 1)
    assert not Patient.objects.exists()
    assert names(drop) == [] and not (drop / "done").exists()
    assert names(drop / "failed") == ["patients.csv", "patients.csv.problems.txt"]
    problems = (drop / "failed" / "patients.csv.problems.txt").read_text()
    assert problems.startswith("LumaPay did not import patients.csv: the connection imports a file whole")
    assert problems.splitlines()[3].startswith("row 3, column date_of_birth")


def test_a_file_that_cannot_be_read_goes_to_failed_with_the_reason(drop, connection):
    put(drop, "patients.csv", "id,name\nP-1,Ana Ruiz\n")

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS
    assert (run.received, run.created, run.rejected) == (1, 0, 1)
    assert run.counts_by_kind["file"] == {
        "received": 1, "created": 0, "updated": 0, "unchanged": 0, "older": 0, "rejected": 1
    }
    rejection = ImportRejection.objects.get(run=run)
    assert (rejection.kind, rejection.reference) == ("file", "patients.csv")
    assert not Patient.objects.exists()
    assert names(drop / "failed") == ["patients.csv", "patients.csv.problems.txt"]
    problems = (drop / "failed" / "patients.csv.problems.txt").read_text()
    assert problems.startswith("LumaPay did not import patients.csv: nothing in it was imported.")
    assert rejection.reason in problems


def test_a_file_whose_name_says_nothing_of_its_kind_goes_to_failed(drop, connection):
    put(drop, "visits-2026-11-29.csv", TWO_PATIENTS)

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED_WITH_REJECTIONS and run.rejected == 1
    assert not Patient.objects.exists()
    assert names(drop / "failed") == ["visits-2026-11-29.csv", "visits-2026-11-29.csv.problems.txt"]
    assert "must start with patients…, appointments…, balances…, copays…" in (
        drop / "failed" / "visits-2026-11-29.csv.problems.txt"
    ).read_text()


def test_a_file_over_the_size_limit_goes_to_failed_unread(server, drop, connection, settings):
    settings.UPLOAD_MAX_BYTES = 40  # the Upload Center's limit, small instead of a 50 MB file
    put(drop, "patients.csv", TWO_PATIENTS)

    run = connection_sync(connection_id=connection.pk)

    assert run.rejected == 1 and not Patient.objects.exists()
    assert server.opened == ["patients.csv.problems.txt"]  # the file itself was never read
    assert (drop / "failed" / "patients.csv.problems.txt").read_text().splitlines()[2] == (
        "The file is larger than 0.0 MB: split it into smaller files (each with the header row)."
    )
    assert names(drop / "failed") == ["patients.csv", "patients.csv.problems.txt"]


# -- the same file again, a crash between import and move --------------------------------------------


def without_moment(rows):
    return [{key: value for key, value in row.items() if key != "ehr_updated_at"} for row in rows]


def test_the_same_file_dropped_again_changes_nothing(drop, connection):
    put(drop, "patients.csv", TWO_PATIENTS)
    first = connection_sync(connection_id=connection.pk)
    stored = list(Patient.objects.order_by("id").values())

    put(drop, "patients.csv", TWO_PATIENTS)
    second = connection_sync(connection_id=connection.pk)

    assert first.created == 2
    assert second.status == ImportRunStatus.SUCCEEDED
    assert (second.received, second.created, second.updated, second.unchanged) == (2, 0, 0, 2)
    # Only the moment of the source's latest word on each patient may move.
    assert without_moment(Patient.objects.order_by("id").values()) == without_moment(stored)
    assert not AuditEvent.objects.filter(action=AuditAction.PATIENT_UPDATED).exists()
    done = names(drop / "done")
    assert len(done) == 2 and done[1] == "patients.csv"
    assert re.fullmatch(r"patients-\d{8}T\d{6}Z\.csv", done[0])
    assert names(drop) == []


@pytest.mark.django_db(transaction=True)
def test_a_file_imported_but_not_moved_stays_and_its_next_import_changes_nothing(server, drop, organization):
    connection = connection_to(server, organization)
    put(drop, "patients.csv", TWO_PATIENTS)
    server.refuse_renames = True

    failed = connection_sync(connection_id=connection.pk)

    assert failed.status == ImportRunStatus.FAILED
    assert failed.error == (
        f"The SFTP server at 127.0.0.1:{server.port} does not let {USERNAME} move patients.csv to done/ in drop: "
        "Renames are refused on this server. The file stays in the folder: the next sync takes it again, "
        "which changes nothing of what it already imported."
    )
    # The import committed before the move was tried.
    assert failed.created == 2 and Patient.objects.count() == 2
    assert "patients.csv" in names(drop)

    server.refuse_renames = False
    again = connection_sync(connection_id=connection.pk)

    assert again.status == ImportRunStatus.SUCCEEDED
    assert (again.created, again.unchanged) == (0, 2)
    assert names(drop) == [] and "patients.csv" in names(drop / "done")


# -- files still being written ------------------------------------------------------------------------


def test_a_file_still_growing_is_left_for_the_next_sync(server, drop, connection):
    growing = put(drop, "patients.csv", TWO_PATIENTS)
    put(drop, "patients-done-writing.csv", HEADER + "P-9,Ida,Lund,1960-07-08,,\n")

    written = []

    def the_ehr_writes_a_row():
        written.append(f"P-{3 + len(written)}")
        with growing.open("a") as file:
            file.write(f"{written[-1]},Cleo,Park,1970-03-04,,\n")

    server.on_listing = the_ehr_writes_a_row
    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED and run.created == 1
    assert list(Patient.objects.values_list("external_ehr_id", flat=True)) == ["P-9"]
    assert names(drop) == ["patients.csv"]

    server.on_listing = None  # the EHR has finished writing
    later = connection_sync(connection_id=connection.pk)

    assert written == ["P-3", "P-4"]  # one row for each of the two looks
    assert later.status == ImportRunStatus.SUCCEEDED and later.created == 4
    assert names(drop) == [] and "patients.csv" in names(drop / "done")


# -- signing in ----------------------------------------------------------------------------------------


def test_a_private_key_signs_in_and_a_known_hosts_line_is_a_host_key(server, drop, organization):
    connection = connection_to(
        server,
        organization,
        credentials={"private_key": server.client_private_key},
        host_key=f"# from ssh-keyscan\n[127.0.0.1]:{server.port} {server.host_key_line}\n",
    )
    put(drop, "patients.csv", TWO_PATIENTS)

    run = connection_sync(connection_id=connection.pk)

    assert run.status == ImportRunStatus.SUCCEEDED and run.created == 2


def failed_sync(connection, drop):
    """The sync fails, with nothing imported and the file left where it was; its error."""
    put(drop, "patients.csv", TWO_PATIENTS)
    run = connection_sync(connection_id=connection.pk)
    assert run.status == ImportRunStatus.FAILED
    assert (run.received, run.created) == (0, 0) and not Patient.objects.exists()
    assert names(drop) == ["patients.csv"]
    connection.refresh_from_db()
    assert connection.failing_since == run.started_at and connection.last_error == run.error
    return run.error


def test_a_server_whose_host_key_is_not_the_saved_one_is_refused(server, drop, organization):
    other = connection_to(server, organization, host_key=other_host_key())
    error = failed_sync(other, drop)
    assert error.startswith(
        f"The SFTP server at 127.0.0.1:{server.port} presented a host key that is not the one saved for this connection"
    )
    assert server.opened == []


def other_host_key():
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()


def test_no_host_key_is_never_trust_on_first_use(server, drop, organization):
    connection = connection_to(server, organization, host_key="")
    error = failed_sync(connection, drop)
    assert error.startswith("The connection has no host key for the SFTP server.")
    assert server.connections == 0


def test_a_wrong_password_is_refused(server, drop, organization):
    connection = connection_to(server, organization, credentials={"password": "wrong"})
    error = failed_sync(connection, drop)
    assert error == (
        f"The SFTP server at 127.0.0.1:{server.port} refused to sign in {USERNAME} with the saved password or private key."
    )


def test_a_refused_connection_is_a_clear_failure(server, drop, organization):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    connection = connection_to(server, organization)
    EhrConnection.objects.filter(pk=connection.pk).update(base_url=f"sftp://127.0.0.1:{closed_port}")
    error = failed_sync(connection, drop)
    assert error == (
        f"The SFTP server at 127.0.0.1:{closed_port} refused the connection: check that it runs and that the port is right."
    )


def test_a_server_that_never_answers_times_out(server, drop, organization):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        connection = connection_to(server, organization, timeout_seconds=0.5)
        EhrConnection.objects.filter(pk=connection.pk).update(base_url=f"sftp://127.0.0.1:{port}")
        error = failed_sync(connection, drop)
    finally:
        for accepted_socket, _address in accepted:
            accepted_socket.close()
        silent.close()
    assert error == f"The SFTP server at 127.0.0.1:{port} did not answer within 0.5 seconds (connect)."


def test_a_missing_folder_is_a_clear_failure(server, drop, organization):
    connection = connection_to(server, organization, folder="exports")
    error = failed_sync(connection, drop)
    assert error == f"The SFTP server at 127.0.0.1:{server.port} has no folder exports: check the connection's folder."


def test_a_file_name_says_its_kind():
    assert [
        kind_of_file_name(name)
        for name in ("patients.csv", "PATIENTS_2026-11-29.xlsx", "appointments-week48.csv", "Balances.csv",
                     "copays_today.xlsx", "visits.csv", "my-patients.csv")
    ] == ["patients", "patients", "appointments", "balances", "balances", None, None]
