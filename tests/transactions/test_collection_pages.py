"""The collection rules' page and the Automation page: managers and administrators only, within
their organization, the rules checked in words, changes audited, nothing sent at save time."""

import datetime

import pytest
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccessPatient
from org_profile.enums import Role
from transactions.enums import CollectionRule
from transactions.models import CollectionRules, PaymentRequest
from transactions.services.collection_schedule import collection_schedule_run

from ..factories import AppointmentFactory, MembershipFactory, PatientFactory
from .collection_support import hours_from_now, rules_on

pytestmark = pytest.mark.django_db

VALID = {
    "copay_request_enabled": "on",
    "copay_request_hours_before": "48",
    "hold_hours_before": "24",
    "balance_threshold": "10.00",
    "balance_reminder_days": "3, 7, 14",
    "quiet_hours_start": "21:00",
    "quiet_hours_end": "08:00",
}


def test_a_manager_turns_the_copay_rule_on_and_nothing_is_sent_at_save(client_for, manager, organization, location):
    AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(5))
    client = client_for(manager)
    assert client.get("/settings/collection-rules/").status_code == 200

    response = client.post("/settings/collection-rules/", VALID)

    assert response.status_code == 302
    rules = CollectionRules.objects.get(organization=organization)
    assert rules.copay_request_enabled is True
    assert rules.balance_reminder_days == [3, 7, 14]
    assert PaymentRequest.objects.count() == 0
    event = AuditEvent.objects.get(organization=organization, action=AuditAction.COLLECTION_RULES_CHANGED)
    assert event.actor_user == manager
    assert event.changes == {"copay_request_enabled": [False, True]}


def test_a_change_is_audited_with_old_and_new_values(client_for, administrator, organization):
    rules_on(organization)
    client = client_for(administrator)
    client.post("/settings/collection-rules/", {**VALID, "copay_request_hours_before": "24", "quiet_hours_end": "07:30",
                                                "balance_threshold": "25.50", "balance_request_enabled": "on"})
    event = AuditEvent.objects.filter(action=AuditAction.COLLECTION_RULES_CHANGED).get()
    assert event.changes["copay_request_hours_before"] == [48, 24]
    assert event.changes["balance_threshold_cents"] == [1000, 2550]
    assert event.changes["balance_request_enabled"] == [False, True]
    assert event.changes["quiet_hours_start"] == ["00:00", "21:00"]
    assert event.changes["quiet_hours_end"] == ["00:00", "07:30"]


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("copay_request_hours_before", "0", "from 1 to 336"),
        ("copay_request_hours_before", "400", "from 1 to 336"),
        ("hold_hours_before", "168", "lapse before the visit"),
        ("hold_hours_before", "0", "from 1 to 144"),
        ("balance_reminder_days", "7, 3", "smallest to the largest"),
        ("balance_reminder_days", "3, 3", "smallest to the largest"),
        ("balance_reminder_days", "3, x", "whole days"),
        ("balance_reminder_days", "3, 40", "from 1 to 29 days"),
        ("balance_threshold", "-1", "cannot be negative"),
        ("quiet_hours_start", "25:00", "such as 21:00"),
    ],
)
def test_bad_values_are_refused_in_words_and_nothing_changes(client_for, manager, organization, field, value, words):
    client = client_for(manager)
    response = client.post("/settings/collection-rules/", {**VALID, field: value})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not CollectionRules.objects.filter(organization=organization).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.COLLECTION_RULES_CHANGED).exists()


def test_staff_cannot_see_or_change_the_rules_or_the_automation(client_for, staff_user, organization):
    client = client_for(staff_user)
    assert client.get("/settings/collection-rules/").status_code == 403
    assert client.post("/settings/collection-rules/", VALID).status_code == 403
    assert client.get("/automation/").status_code == 403
    assert not CollectionRules.objects.exists()


def test_the_automation_page_shows_today_and_tomorrow_of_its_own_clinic_only(
    client_for, manager, organization, location, other_organization, django_capture_on_commit_callbacks
):
    rules_on(organization, copay_request_hours_before=24)
    today_patient = PatientFactory(organization=organization, first_name="Ana", last_name="Today")
    AppointmentFactory(patient=today_patient, location=location, starts_at=hours_from_now(3))
    tomorrow_patient = PatientFactory(organization=organization, first_name="Bea", last_name="Tomorrow")
    # The request goes 24 h before: a visit ~48 h from now is asked for tomorrow (clinic time).
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(organization.timezone)
    tomorrow_noon = datetime.datetime.combine(
        timezone.now().astimezone(zone).date() + datetime.timedelta(days=1), datetime.time(12), tzinfo=zone
    )
    AppointmentFactory(patient=tomorrow_patient, location=location, starts_at=tomorrow_noon + datetime.timedelta(hours=24))
    other_patient = PatientFactory(organization=other_organization, first_name="Cy", last_name="Elsewhere")
    rules_on(other_organization)
    AppointmentFactory(patient=other_patient, starts_at=hours_from_now(3))
    with django_capture_on_commit_callbacks(execute=True):
        collection_schedule_run()
    request = PaymentRequest.objects.get(patient=today_patient)

    response = client_for(manager).get("/automation/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Ana Today" in page and f'/payment-requests/{request.pk}/' in page
    assert "Bea Tomorrow" in page
    assert "Copay request before the visit" in page
    assert "Elsewhere" not in page
    other_request = PaymentRequest.objects.get(patient=other_patient)
    assert f"/payment-requests/{other_request.pk}/" not in page
    assert set(PhiAccessPatient.objects.values_list("patient_id", flat=True)) == {today_patient.pk, tomorrow_patient.pk}


def test_the_automation_page_with_every_rule_off(client_for, administrator):
    response = client_for(administrator).get("/automation/")
    assert response.status_code == 200
    assert "every rule is off" in response.content.decode()


def test_the_requests_history_says_lumapay_and_the_rule(client_for, manager, organization, location, django_capture_on_commit_callbacks):
    rules_on(organization)
    appointment = AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(5))
    with django_capture_on_commit_callbacks(execute=True):
        collection_schedule_run()
    request = PaymentRequest.objects.get(appointment=appointment)

    page = client_for(manager).get(f"/payment-requests/{request.pk}/").content.decode()

    assert "LumaPay" in page
    assert "Rule: Copay request before the visit" in page
