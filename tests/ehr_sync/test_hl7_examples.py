"""The README's walk-through, as a newcomer runs it: map the demo EHR's facility with
``hl7_connection``, then ``hl7_send`` the project's example messages (ehr_sync/hl7_examples/) to
the listener on a real socket: the patient is registered, the appointment booked, then cancelled."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

import ehr_sync
from ehr_sync.enums import AppointmentStatus, EhrConnectionKind
from ehr_sync.hl7_feed import FacilityMappingError, hl7_connection_map
from ehr_sync.models import Appointment, EhrConnection, Patient
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from tests.factories import LocationFactory, OrganizationFactory

from .hl7_messages import ListenerThread

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Path(ehr_sync.__file__).parent / "hl7_examples"


@pytest.fixture
def listener():
    running = ListenerThread().start()
    yield running
    running.stop()


@pytest.fixture
def demo_clinic(db):
    organization = OrganizationFactory(name="Demo Family Clinic", slug="demo-clinic", timezone="America/New_York")
    LocationFactory(organization=organization, name="Downtown")
    LocationFactory(organization=organization, name="Northside")
    return organization


def send(listener, name, capsys) -> str:
    call_command("hl7_send", str(EXAMPLES / name), "--port", str(listener.port))
    return capsys.readouterr().out


def test_the_walk_through_registers_books_then_cancels(listener, demo_clinic, capsys):
    call_command("hl7_connection", "--organization", "demo-clinic", "--sending-facility", "DEMO-EHR")
    assert "Demo Family Clinic: HL7 messages from facility DEMO-EHR are imported here" in capsys.readouterr().out

    assert "MSA|AA|DEMO-0001" in send(listener, "register-patient.hl7", capsys)
    patient = Patient.objects.get(organization=demo_clinic)
    assert (patient.first_name, patient.mobile_phone, patient.sms_consent) == ("Elena", "+18045550177", True)
    assert patient.balance.amount_due_cents == 8500

    assert "MSA|AA|DEMO-0002" in send(listener, "book-appointment.hl7", capsys)
    appointment = Appointment.objects.get(organization=demo_clinic)
    assert (appointment.status, appointment.location.name) == (AppointmentStatus.BOOKED, "Downtown")

    assert "MSA|AA|DEMO-0003" in send(listener, "cancel-appointment.hl7", capsys)
    appointment.refresh_from_db()
    assert appointment.status == AppointmentStatus.CANCELLED


def test_mapping_a_facility_is_audited_and_a_second_clinic_cannot_claim_it(demo_clinic):
    connection = hl7_connection_map(organization=demo_clinic, actor=None, sending_facility="DEMO-EHR")
    other = OrganizationFactory(name="Lakeside Pediatrics")

    with pytest.raises(FacilityMappingError) as refused:
        hl7_connection_map(organization=other, actor=None, sending_facility="demo-ehr")
    # Which clinic holds it stays unsaid.
    assert refused.value.message == (
        "Facility 'demo-ehr' is already mapped by another connection: give each clinic's feed its own "
        "receiving facility (MSH-6)."
    )

    # With its own receiving facility (MSH-6) it can: the two feeds are told apart.
    lakeside = hl7_connection_map(organization=other, actor=None, sending_facility="DEMO-EHR",
                                  receiving_facility="LAKESIDE")
    assert lakeside.options == {"sending_facility": "DEMO-EHR", "receiving_facility": "LAKESIDE"}
    assert connection.kind == EhrConnectionKind.HL7_MLLP and connection.sync_every_minutes == 0
    assert EhrConnection.objects.filter(organization=other).count() == 1
    created = AuditEvent.objects.get(organization=demo_clinic, action=AuditAction.EHR_CONNECTION_CREATED)
    assert created.changes == {"connection": connection.pk, "options": {"sending_facility": "DEMO-EHR"}}


def test_remapping_changes_the_clinics_connection_and_audits_old_and_new(demo_clinic):
    connection = hl7_connection_map(organization=demo_clinic, actor=None, sending_facility="DEMO-EHR",
                                    patient_facilities=["DEMO HOSPITAL"])

    hl7_connection_map(organization=demo_clinic, actor=None, sending_facility="DEMO-EHR-2")

    connection.refresh_from_db()
    assert connection.options == {"sending_facility": "DEMO-EHR-2"}
    changed = AuditEvent.objects.get(action=AuditAction.EHR_CONNECTION_CHANGED)
    assert changed.changes["options"] == [
        {"sending_facility": "DEMO-EHR", "patient_facilities": ["DEMO HOSPITAL"]}, {"sending_facility": "DEMO-EHR-2"}
    ]


def test_hl7_connection_names_an_unknown_organization(demo_clinic):
    with pytest.raises(CommandError, match="No organization has the slug 'nowhere'."):
        call_command("hl7_connection", "--organization", "nowhere", "--sending-facility", "X")
    assert not EhrConnection.objects.exists()
