"""Kept HL7 messages in the operators' admin: read-only, the message itself on its own page (its
patient's look recorded), and Replay, which imports kept messages again and audits it."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from ehr_sync.enums import EhrConnectionKind, Hl7MessageStatus
from ehr_sync.hl7_feed import hl7_message_process, hl7_message_store
from ehr_sync.models import EhrConnection, Hl7Message, Patient
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess, PhiAccessPatient
from tests.factories import UserFactory

from .hl7_messages import FACILITY, adt

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return UserFactory(is_staff=True, is_superuser=True)


def kept_unknown_facility_message():
    message_id = hl7_message_store(raw=adt().encode())
    assert hl7_message_process(message_id=message_id).code == "AR"
    return Hl7Message.objects.get(pk=message_id)


def test_replay_imports_a_kept_message_once_its_facility_is_mapped_and_audits_it(client, operator, organization):
    message = kept_unknown_facility_message()
    EhrConnection.objects.create(organization=organization, name="Feed", kind=EhrConnectionKind.HL7_MLLP,
                                 options={"sending_facility": FACILITY})
    client.force_login(operator)

    response = client.post(
        reverse("admin:ehr_sync_hl7message_changelist"),
        {"action": "replay_selected", "_selected_action": [message.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Imported 1 message." in response.content.decode()
    message.refresh_from_db()
    assert (message.status, message.ack_code, message.organization) == (Hl7MessageStatus.IMPORTED, "AA", organization)
    assert Patient.objects.get(organization=organization).external_ehr_id == "P-100"
    event = AuditEvent.objects.get(action=AuditAction.HL7_MESSAGE_REPLAYED)
    assert event.actor_user == operator
    assert event.changes == {"hl7_message": message.pk, "control_id": "MSG0001", "status": "rejected", "ack_code": "AR"}


def test_a_replay_that_fails_again_says_why_and_imports_nothing(client, operator):
    message = kept_unknown_facility_message()
    client.force_login(operator)

    response = client.post(
        reverse("admin:ehr_sync_hl7message_changelist"),
        {"action": "replay_selected", "_selected_action": [message.pk]},
        follow=True,
    )

    assert "(AR): Unknown facility: MSH-4 (sending facility) &#x27;RIVERSIDE&#x27; maps to no" in response.content.decode()
    assert not Patient.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.HL7_MESSAGE_REPLAYED).exists()


def test_an_operator_without_the_change_permission_cannot_replay(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_hl7message"))
    message = kept_unknown_facility_message()
    client.force_login(viewer)

    response = client.get(reverse("admin:ehr_sync_hl7message_changelist"))

    assert response.status_code == 200
    assert "replay_selected" not in response.content.decode()
    assert Hl7Message.objects.get(pk=message.pk).status == Hl7MessageStatus.REJECTED


def test_the_message_page_shows_the_message_and_records_the_look_at_its_patient(client, operator, organization):
    EhrConnection.objects.create(organization=organization, name="Feed", kind=EhrConnectionKind.HL7_MLLP,
                                 options={"sending_facility": FACILITY})
    message_id = hl7_message_store(raw=adt().encode())
    hl7_message_process(message_id=message_id)
    client.force_login(operator)

    listing = client.get(reverse("admin:ehr_sync_hl7message_changelist")).content.decode()
    page = client.get(reverse("admin:ehr_sync_hl7message_change", args=[message_id])).content.decode()

    assert "García" not in listing  # the list shows no patient data
    assert "PID|1||99-11-2222" in page and "García^Ana" in page
    access = PhiAccess.objects.get(page="admin:ehr_sync_hl7message_change")
    assert access.is_operator and access.actor_user == operator
    assert list(PhiAccessPatient.objects.filter(access=access).values_list("patient__external_ehr_id", flat=True)) == ["P-100"]
