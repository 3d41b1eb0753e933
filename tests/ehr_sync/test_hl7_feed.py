"""HL7 v2 over MLLP (ehr_sync/hl7_feed.py), through the listener on a real socket on 127.0.0.1:
python-hl7's asyncio MLLP server in a thread, python-hl7's MLLP client. Each message is stored
before it is acknowledged, imported in its clinic whole or not at all, and answered AA, AE or AR
with the reason."""

import datetime
import socket
import time
import zoneinfo
from pathlib import Path

import pytest
from django.core.management import call_command

from ehr_sync import hl7_feed
from ehr_sync.enums import AppointmentStatus, EhrConnectionKind, Hl7MessageStatus
from ehr_sync.hl7_feed import hl7_message_replay
from ehr_sync.models import Appointment, Balance, EhrConnection, Hl7Message, ImportRejection, Patient
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from tests.factories import LocationFactory, OrganizationFactory, UserFactory

from .hl7_messages import FACILITY, SB, EB, ListenerThread, adt, msa, msh, pid, segment, siu

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SAMPLES = Path("/work/shared/fixtures/ehr/hl7")


@pytest.fixture
def listener():
    running = ListenerThread().start()
    yield running
    running.stop()


@pytest.fixture
def clinic(organization):
    organization.timezone = "America/New_York"
    organization.save(update_fields=["timezone"])
    LocationFactory(organization=organization, name="Downtown Clinic", ehr_location_id="DT-1")
    LocationFactory(organization=organization, name="Northside Clinic", ehr_location_id="NS-2")
    return EhrConnection.objects.create(
        organization=organization, name="Riverside EHR feed", kind=EhrConnectionKind.HL7_MLLP,
        options={"sending_facility": FACILITY},
    )


def nothing_imported():
    return (Patient.objects.count(), Appointment.objects.count(), Balance.objects.count()) == (0, 0, 0)


# -- patients --------------------------------------------------------------------------------------


def test_adt_a04_registers_the_patient_with_contact_language_consent_and_balance(listener, clinic):
    message = adt("A04", extra=[segment("CON", {1: "1", 2: "SMS^Text messages^LOCAL", 11: "A"})])

    ack = listener.send(message)

    assert msa(ack) == ("AA", "MSG0001", "")
    assert str(ack.segment("MSH")(9)) == "ACK^A04^ACK" and str(ack.segment("MSH")(12)) == "2.5"
    patient = Patient.objects.get()
    assert patient.organization == clinic.organization
    assert (patient.external_ehr_id, patient.first_name, patient.last_name) == ("P-100", "Ana", "García")
    assert patient.date_of_birth == datetime.date(1984, 3, 9)
    # PID-13: the CP repetition is the mobile (not the PH one before it); e-mail from XTN-4.
    assert (patient.mobile_phone, patient.email) == ("+12175550134", "ana@example.org")
    assert patient.preferred_language == "es"
    assert patient.sms_consent is True
    # MSH-7 without an offset is the clinic's local time; MSH-10 is the version.
    assert patient.ehr_updated_at == datetime.datetime(2026, 11, 20, 9, 30, tzinfo=NEW_YORK)
    assert patient.ehr_version == "MSG0001"
    assert patient.balance.amount_due_cents == 12550
    stored = Hl7Message.objects.get()
    assert (stored.status, stored.ack_code, stored.error) == (Hl7MessageStatus.IMPORTED, "AA", "")
    assert (stored.control_id, stored.message_type, stored.sending_facility) == ("MSG0001", "ADT^A04", FACILITY)
    assert stored.raw == message and stored.connection == clinic
    assert stored.import_run.created == 2 and stored.import_run.source == "hl7"


def test_adt_a08_updates_the_patient_and_a_refused_consent_withdraws_it(listener, clinic):
    listener.send(adt("A04", extra=[segment("CON", {1: "1", 2: "SMS", 11: "A"})]))

    ack = listener.send(adt(
        "A08", control="MSG0002", sent="20261121080000",
        pid_segment=pid(p5="García-Ruiz^Ana^^^^^L", p13="^ORN^CP^^1^217^5550199", p15="eng^English"),
        extra=[segment("CON", {1: "1", 2: "SMS", 11: "R"})], pv1_balance="0.00",
    ))

    assert msa(ack)[0] == "AA"
    patient = Patient.objects.get()
    assert (patient.last_name, patient.mobile_phone, patient.email) == ("García-Ruiz", "+12175550199", "")
    assert patient.preferred_language == "en" and patient.sms_consent is False
    assert patient.ehr_version == "MSG0002" and patient.balance.amount_due_cents == 0
    event = AuditEvent.objects.get(action=AuditAction.PATIENT_UPDATED)
    assert event.changes["last_name"] == ["García", "García-Ruiz"]


def test_an_older_message_arriving_after_a_newer_one_changes_nothing(listener, clinic):
    listener.send(adt("A08", control="NEW", sent="20261121080000", pid_segment=pid(p5="Newer^Ana")))
    before = Patient.objects.values().get()

    ack = listener.send(adt("A08", control="OLD", sent="20261120080000", pid_segment=pid(p5="Older^Ana"),
                            pv1_balance="999.00"))

    assert msa(ack)[0] == "AA"
    assert "newer update" in msa(ack)[2]
    assert Patient.objects.values().get() == before
    assert Patient.objects.get().balance.amount_due_cents == 12550
    assert Hl7Message.objects.get(control_id="OLD").import_run.older == 2


def test_the_same_message_twice_changes_nothing(listener, clinic):
    listener.send(adt("A04"))
    before = (Patient.objects.values().get(), Balance.objects.values().get())
    audit_before = AuditEvent.objects.exclude(action=AuditAction.RECORDS_IMPORTED).count()

    ack = listener.send(adt("A04"))

    assert msa(ack)[:2] == ("AA", "MSG0001")
    assert (Patient.objects.values().get(), Balance.objects.values().get()) == before
    assert AuditEvent.objects.exclude(action=AuditAction.RECORDS_IMPORTED).count() == audit_before
    second = Hl7Message.objects.order_by("id").last()
    assert second.import_run.unchanged == 2 and second.import_run.created == second.import_run.updated == 0
    assert Hl7Message.objects.count() == 2  # both arrivals kept, as they came


# -- appointments ----------------------------------------------------------------------------------


def test_siu_s12_books_the_appointment_and_registers_its_patient(listener, clinic):
    ack = listener.send(siu("S12"))

    assert msa(ack)[0] == "AA"
    appointment = Appointment.objects.get()
    assert appointment.external_ehr_id == "A-500"  # SCH-2, the filler's id
    assert appointment.patient == Patient.objects.get(external_ehr_id="P-100")
    assert appointment.starts_at == datetime.datetime(2026, 12, 1, 10, 30, tzinfo=NEW_YORK)
    assert appointment.location.name == "Downtown Clinic"  # AIL-3 by the location's EHR id
    assert appointment.provider_name == "Dr. Maria Kim"
    assert appointment.status == AppointmentStatus.BOOKED


def test_siu_s13_reschedules_and_s14_modifies(listener, clinic):
    listener.send(siu("S12"))

    rescheduled = listener.send(siu("S13", control="MSG0002", sent="20261120100000", start="20261202143000-0500"))
    moved = Appointment.objects.get().starts_at
    modified = listener.send(siu("S14", control="MSG0003", sent="20261120110000", start="20261202143000-0500",
                                 location="NS-2", provider="D-9^Osei^Kwame", filler_status="Complete"))

    assert msa(rescheduled)[0] == msa(modified)[0] == "AA"
    assert moved == datetime.datetime(2026, 12, 2, 19, 30, tzinfo=datetime.UTC)
    appointment = Appointment.objects.get()
    assert (appointment.location.name, appointment.provider_name) == ("Northside Clinic", "Kwame Osei")
    assert appointment.status == AppointmentStatus.FULFILLED


def test_sending_siu_s15_cancels_the_appointment(listener, clinic):
    listener.send(siu("S12"))

    ack = listener.send(siu("S15", control="MSG0002", sent="20261120100000", filler_status="Cancelled"))

    assert msa(ack)[:2] == ("AA", "MSG0002")
    appointment = Appointment.objects.get()
    assert appointment.status == AppointmentStatus.CANCELLED
    event = AuditEvent.objects.get(action=AuditAction.APPOINTMENT_CHANGED)
    assert event.changes["status"] == ["booked", "cancelled"]


def test_siu_s15_without_a_pid_cancels_the_appointment_it_names(listener, clinic):
    listener.send(siu("S12"))

    ack = listener.send(siu("S15", control="MSG0002", sent="20261120100000", with_pid=False))

    assert msa(ack)[0] == "AA"
    assert Appointment.objects.get().status == AppointmentStatus.CANCELLED


def test_siu_s26_marks_a_no_show(listener, clinic):
    listener.send(siu("S12"))

    ack = listener.send(siu("S26", control="MSG0002", sent="20261201120000"))

    assert msa(ack)[0] == "AA"
    assert Appointment.objects.get().status == AppointmentStatus.NO_SHOW


def test_versions_2_3_to_2_8_are_accepted_and_the_ack_answers_in_the_message_version(listener, clinic):
    for number, version in enumerate(("2.3", "2.3.1", "2.4", "2.5.1", "2.6", "2.7.1", "2.8", "2.8.2")):
        ack = listener.send(adt("A08", control=f"V{number}", sent=f"2026112{number}080000", version=version))
        assert msa(ack)[0] == "AA", version
        assert str(ack.segment("MSH")(12)) == version


# -- which clinic ----------------------------------------------------------------------------------


def test_each_facility_lands_in_its_own_clinic(listener, clinic):
    lakeside = OrganizationFactory(name="Lakeside Pediatrics")
    EhrConnection.objects.create(organization=lakeside, name="Lakeside feed", kind=EhrConnectionKind.HL7_MLLP,
                                 options={"sending_facility": "LAKESIDE"})
    lakeside_pid = pid(p3="L-1^^^LAKESIDE^MR^LAKESIDE", p5="Okafor^Chidi")

    ack = listener.send(adt("A04", facility="LAKESIDE", pid_segment=lakeside_pid, control="L1"))

    assert msa(ack)[0] == "AA"
    assert list(Patient.objects.values_list("organization", "external_ehr_id")) == [(lakeside.pk, "L-1")]
    assert Hl7Message.objects.get().organization == lakeside


def test_a_receiving_facility_tells_apart_two_clinics_with_the_same_sending_facility(listener, clinic):
    lakeside = OrganizationFactory(name="Lakeside Pediatrics")
    EhrConnection.objects.create(organization=lakeside, name="Lakeside feed", kind=EhrConnectionKind.HL7_MLLP,
                                 options={"sending_facility": FACILITY, "receiving_facility": "LUMAPAY-LAKESIDE"})

    ack = listener.send(adt("A04", receiving="LUMAPAY-LAKESIDE"))

    assert msa(ack)[0] == "AA"
    assert Patient.objects.get().organization == lakeside


# -- what is refused, and why: each kept, nothing of it imported ------------------------------------

BALANCE_OF_REJECTED = "balance PV1-46 (patient): Its patient was rejected (see the patient's problem)."
MALFORMED = [
    ("empty", b"", "AR", "The message is empty.", "100"),
    ("garbage bytes", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "AR",
     "The message does not begin with an MSH segment (not an HL7 v2 message).", "100"),
    ("no MSH", ("EVN|A04|20261120093000\r" + pid() + "\r").encode(), "AR",
     "The message does not begin with an MSH segment (not an HL7 v2 message).", "100"),
    ("wrong field separator", adt().replace("|", "#").encode(), "AR",
     "MSH-1 (field separator) is '#': this feed takes '|', the separator HL7 recommends.", "102"),
    ("wrong encoding characters", adt().replace("MSH|^~\\&|", "MSH|^^^^|", 1).encode(), "AR",
     "MSH-2 (encoding characters) must be four distinct symbols, such as ^~\\&.", "102"),
    ("version 2.9", adt(version="2.9").encode(), "AR",
     "HL7 version 2.9 is not accepted: this feed takes versions 2.3 to 2.8.", "203"),
    ("version 2.2", adt(version="2.2").encode(), "AR",
     "HL7 version 2.2 is not accepted: this feed takes versions 2.3 to 2.8.", "203"),
    ("truncated header", b"MSH|^~\\&|EPIC|RIVERSIDE|LUMAPAY|LUMAPAY|20261120093000||ADT^A04", "AR",
     "The MSH segment is truncated: it has 9 fields, HL7 requires 12 (up to MSH-12, the version).", "101"),
    ("truncated after MSH", (msh("ADT^A04") + "\rEVN|A04|20261120093000\r").encode(), "AR",
     "ADT^A04 has no PID segment: the message is truncated or incomplete.", "100"),
    ("truncated SIU", (msh("SIU^S12") + "\r").encode(), "AR",
     "SIU^S12 has no SCH segment: the message is truncated or incomplete.", "100"),
    ("garbled segment", (adt() + "P\x01D|cut").encode(), "AR",
     "Segment 5 is not an HL7 segment (its name is not three capitals): the message is garbled or truncated.", "100"),
    ("unknown trigger", adt("A01").encode(), "AR",
     "Trigger event ADT^A01 is not taken by this feed: it takes ADT^A04, ADT^A08, SIU^S12, SIU^S13, SIU^S14, "
     "SIU^S15 and SIU^S26.", "201"),
    ("unknown message type", (msh("ORU^R01") + "\r" + pid() + "\r").encode(), "AR",
     "Message type ORU is not taken by this feed: it takes ADT^A04, ADT^A08, SIU^S12, SIU^S13, SIU^S14, "
     "SIU^S15 and SIU^S26.", "200"),
    ("no control id", adt(control="").encode(), "AR", "MSH-10 (message control id) is empty.", "101"),
    ("no message time", adt(sent="").encode(), "AR",
     "MSH-7 (date/time of message) is empty: without it a newer update cannot be told from an older one.", "101"),
    ("unknown facility", adt(facility="ELSEWHERE").encode(), "AR",
     "Unknown facility: MSH-4 (sending facility) 'ELSEWHERE' maps to no clinic's HL7 connection.", "204"),
    ("patient from another facility", adt(pid_segment=pid(p3="Q-9^^^LAKESIDE^MR^LAKESIDE")).encode(), "AR",
     "The patient is from another facility: PID-3's assigning facility is 'LAKESIDE', not this connection's "
     "'RIVERSIDE'.", "204"),
    ("bad date of birth", adt(pid_segment=pid(p7="19840230")).encode(), "AE",
     "PID-7 (date of birth) is not a real date (day is out of range for month).", "102"),
    ("date of birth not a date", adt(pid_segment=pid(p7="03/09/1984")).encode(), "AE",
     "PID-7 (date of birth) is not a date written YYYYMMDD.", "102"),
    ("bad message time", adt(sent="20261340093000").encode(), "AE",
     "MSH-7 (date/time of message) is not a real date/time (month must be in 1..12).", "102"),
    ("balance not an amount", adt(pv1_balance="12O.00").encode(), "AE",
     "PV1-46 (current patient balance) is not an amount such as 125.50.", "102"),
    ("date of birth in the future", adt(pid_segment=pid(p7="21000101")).encode(), "AE",
     "Not imported: patient PID-7 (date of birth): The date of birth is in the future.; "
     f"{BALANCE_OF_REJECTED}", "102"),
    ("no family name", adt(pid_segment=pid(p5="^Ana")).encode(), "AE",
     "Not imported: patient PID-5 (family name): The patient's last name is missing.; "
     f"{BALANCE_OF_REJECTED}", "101"),
]


@pytest.mark.parametrize(("raw", "code", "reason", "error_code"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_a_malformed_message_is_kept_refused_with_its_reason_and_nothing_is_imported(
    listener, clinic, raw, code, reason, error_code
):
    ack = listener.send(raw)

    assert msa(ack)[0] == code
    assert msa(ack)[2] == reason
    err = ack.segment("ERR")
    assert str(err(3)(1)(1)) == error_code
    # One ERR per problem: the first names the first problem.
    assert ack.unescape(str(err(8))) == reason.removeprefix("Not imported: ").split("; ")[0]
    assert nothing_imported()
    stored = Hl7Message.objects.get()
    assert (stored.status, stored.ack_code, stored.error) == (Hl7MessageStatus.REJECTED, code, reason)
    assert stored.raw == hl7_feed.raw_decode(raw)


def test_a_message_of_an_unknown_facility_is_kept_without_a_clinic(listener, clinic):
    listener.send(adt(facility="ELSEWHERE"))

    stored = Hl7Message.objects.get()
    assert stored.organization is None and stored.connection is None
    assert stored.sending_facility == "ELSEWHERE"


def test_an_appointment_of_a_rejected_patient_is_not_booked_either(listener, clinic):
    ack = listener.send(siu("S12", pid_segment=pid(p13="^PRN^CP^^^^555")))

    assert msa(ack)[0] == "AE"
    assert msa(ack)[2].startswith("Not imported: patient PID-13 (mobile phone): “555” has 3 digits")
    assert "appointment PID-3 (patient): Its patient was rejected" in msa(ack)[2]
    assert nothing_imported()
    assert ImportRejection.objects.filter(run=Hl7Message.objects.get().import_run).count() == 2


def test_a_block_without_the_mllp_start_character_is_kept_and_refused(listener, clinic):
    answer = listener.send_raw(adt().encode() + EB)

    assert "MSA|AR|MSG0001|The block does not begin with MLLP's start character <VT> (0x0B)" in answer
    assert nothing_imported()
    assert Hl7Message.objects.get().status == Hl7MessageStatus.REJECTED


# -- kept before the acknowledgement ---------------------------------------------------------------


def test_a_message_is_stored_before_it_is_acknowledged(listener, clinic, monkeypatch):
    # The processing step fails as if the process were killed after the store: a crash cannot be
    # made to happen on cue here, so the step after the store raises instead.
    def crash(*, message_id):
        raise RuntimeError("killed")

    monkeypatch.setattr(hl7_feed, "hl7_message_process", crash)

    ack = listener.send(siu("S12"))

    assert msa(ack) == ("AE", "MSG0001", "LumaPay could not process the message; it is kept and will be replayed.")
    stored = Hl7Message.objects.get()
    assert stored.status == Hl7MessageStatus.RECEIVED and stored.raw == siu("S12")
    assert nothing_imported()

    monkeypatch.undo()
    replayed = hl7_message_replay(message_id=stored.pk, actor=None)

    assert replayed.code == "AA"
    assert Appointment.objects.get().external_ehr_id == "A-500"
    event = AuditEvent.objects.get(action=AuditAction.HL7_MESSAGE_REPLAYED)
    assert event.changes == {"hl7_message": stored.pk, "control_id": "MSG0001", "status": "received", "ack_code": "AE"}


def test_a_message_that_could_not_be_stored_is_not_acknowledged(listener, clinic, monkeypatch):
    # The database refusing the write cannot be arranged on cue here: the store step raises instead.
    def database_down(*, raw):
        raise OSError("could not connect to server")

    monkeypatch.setattr(hl7_feed, "hl7_message_store", database_down)

    answer = listener.send_raw(SB + adt().encode() + EB)

    # No ACK, the connection closed: the EHR keeps the message and sends it again.
    assert answer == ""
    assert not Hl7Message.objects.exists() and nothing_imported()


def test_a_sender_hanging_up_mid_message_leaves_it_kept_as_truncated(listener, clinic):
    with socket.create_connection(("127.0.0.1", listener.port)) as connection:
        connection.sendall(SB + adt().encode()[:60])

    def kept():
        return Hl7Message.objects.filter(status=Hl7MessageStatus.REJECTED).first()

    deadline = datetime.datetime.now() + datetime.timedelta(seconds=10)
    while kept() is None and datetime.datetime.now() < deadline:
        time.sleep(0.05)
    stored = kept()
    assert stored is not None
    assert stored.raw == adt()[:60]
    assert stored.error == "The connection closed before the end of the message (MLLP's <FS><CR>): it is truncated."
    assert nothing_imported()


def test_replaying_a_message_of_an_unknown_facility_after_mapping_it_imports_it(listener, organization):
    listener.send(adt())
    stored = Hl7Message.objects.get()
    assert stored.ack_code == "AR"
    connection = EhrConnection.objects.create(organization=organization, name="Feed", kind=EhrConnectionKind.HL7_MLLP,
                                              options={"sending_facility": "riverside"})
    operator = UserFactory(is_staff=True, is_superuser=True)

    ack = hl7_message_replay(message_id=stored.pk, actor=operator)

    assert ack.code == "AA"
    stored.refresh_from_db()
    assert (stored.organization, stored.connection, stored.status) == (organization, connection, Hl7MessageStatus.IMPORTED)
    assert Patient.objects.get().organization == organization
    event = AuditEvent.objects.get(action=AuditAction.HL7_MESSAGE_REPLAYED)
    assert event.actor_user == operator and event.organization == organization


# -- the sending command ---------------------------------------------------------------------------


def test_hl7_send_sends_a_file_and_prints_the_acknowledgements(listener, clinic, tmp_path, capsys):
    booked = siu("S12").replace("\r", "\n")
    cancelled = siu("S15", control="MSG0002", sent="20261120100000").replace("\r", "\r\n")
    path = tmp_path / "s12-then-s15.hl7"
    path.write_text(booked + cancelled, encoding="utf-8")

    call_command("hl7_send", str(path), "--host", "127.0.0.1", "--port", str(listener.port))

    printed = capsys.readouterr().out
    assert "MSA|AA|MSG0001" in printed and "MSA|AA|MSG0002" in printed
    assert Appointment.objects.get().status == AppointmentStatus.CANCELLED


# -- the public samples (realism; skipped without them) --------------------------------------------


@pytest.mark.skipif(not (SAMPLES / "SIU-S15-01.hl7").exists(), reason="the public HL7 samples are not on this machine")
def test_the_public_hl7_v2_8_samples_are_read_and_their_problems_named(listener, organization):
    EhrConnection.objects.create(
        organization=organization, name="GHH", kind=EhrConnectionKind.HL7_MLLP,
        options={"sending_facility": "GHHSFacility", "patient_facilities": ["GOOD HEALTH HOSPITAL"]},
    )
    LocationFactory(organization=organization, name="GH Clinic", ehr_location_id="055")
    for name in ("ADT-A04-01.hl7", "SIU-S12-01.hl7", "SIU-S15-01.hl7"):
        ack = listener.send((SAMPLES / name).read_bytes().replace(b"\n", b"\r"))
        # Version 2.8, CX-5 MR id, a CP number in PID-13: all read. Their mobile number has 8
        # digits, which no phone can have: the patient (and its appointment) is refused, by name.
        assert msa(ack)[0] == "AE", name
        assert msa(ack)[2].startswith("Not imported: patient PID-13 (mobile phone): “78788788” has 8 digits"), name
    assert nothing_imported()
    assert Hl7Message.objects.count() == 3


# -- the event loop and the tenant scope -----------------------------------------------------------


def test_a_sender_stalled_mid_message_does_not_hold_up_another(listener, clinic):
    with socket.create_connection(("127.0.0.1", listener.port)) as stalled:
        stalled.sendall(SB + adt(control="STALLED").encode()[:80])
        started = time.monotonic()

        ack = listener.send(adt(control="OTHER"))

        assert msa(ack)[:2] == ("AA", "OTHER")
        assert time.monotonic() - started < 5
    assert Patient.objects.count() == 1


def test_the_store_reads_across_clinics_and_the_import_runs_in_the_clinics_scope(listener, clinic, monkeypatch):
    # A spy, not a fake: it notes the database scope each step runs in and calls the real step.
    from lumapay.tenant_rls import APP_ROLE, OWNER, Scope, current_scope

    scopes = {}
    real_connection_for, real_import = hl7_feed.connection_for_facility, hl7_feed.records_import

    def connection_for(**kwargs):
        scopes.setdefault("facility", current_scope())
        return real_connection_for(**kwargs)

    def records_import(**kwargs):
        scopes["import"] = current_scope()
        return real_import(**kwargs)

    monkeypatch.setattr(hl7_feed, "connection_for_facility", connection_for)
    monkeypatch.setattr(hl7_feed, "records_import", records_import)

    assert msa(listener.send(adt()))[0] == "AA"

    assert scopes == {"facility": OWNER, "import": Scope(APP_ROLE, clinic.organization_id)}


def test_a_facility_two_connections_claim_cannot_be_stored(listener, clinic):
    """The database refuses a second connection for the same facility pair at any organization
    (case aside), so a message can never find two clinics."""
    from django.db import IntegrityError, transaction

    other = OrganizationFactory(name="Lakeside Pediatrics")
    with pytest.raises(IntegrityError), transaction.atomic():
        EhrConnection.objects.create(organization=other, name="Feed", kind=EhrConnectionKind.HL7_MLLP,
                                     options={"sending_facility": FACILITY.lower()})
    # With a receiving facility (MSH-6) of its own, the other clinic's feed is told apart.
    EhrConnection.objects.create(organization=other, name="Feed", kind=EhrConnectionKind.HL7_MLLP,
                                 options={"sending_facility": FACILITY, "receiving_facility": "LAKESIDE"})

    ack = listener.send(adt())

    assert msa(ack)[:1] == ("AA",)
    assert Hl7Message.objects.get().organization == clinic.organization


def test_the_feeds_health_badge_follows_its_messages(listener, clinic):
    """An HL7 connection is healthy while its messages are accepted; a refused record is shown as
    its last error without calling the feed failing."""
    assert msa(listener.send(adt()))[:1] == ("AA",)
    clinic.refresh_from_db()
    assert clinic.last_success_at is not None and clinic.failing_since is None
    accepted_at = clinic.last_success_at

    assert msa(listener.send(adt(pid_segment=pid(f7="19791399"), control="MSG0002", sent="20261120093100")))[:1] == ("AE",)
    clinic.refresh_from_db()
    assert clinic.last_success_at == accepted_at and clinic.failing_since is None
    # The badge names the message, never the patient's value (the admin's message page says why).
    assert clinic.last_error.startswith("HL7 message MSG0002 (ADT^A04) was not imported (AE)")
    assert "1979" not in clinic.last_error
