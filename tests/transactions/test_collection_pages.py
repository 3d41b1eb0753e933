"""The collection rules' page and the Automation page: managers and administrators only, within
their organization, the rules checked in words, changes audited, nothing sent at save time."""

import datetime

import pytest
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccessPatient
from transactions.enums import CollectionRule
from transactions.models import CollectionRules, PaymentRequest
from transactions.services.collection_schedule import collection_schedule_run

from ..factories import AppointmentFactory, PatientFactory
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
    assert "By the rule: Copay request before the visit" in page


def _tomorrow(organization):
    from zoneinfo import ZoneInfo

    from transactions.selectors.collection_schedule import clinic_day

    zone = ZoneInfo(organization.timezone)
    return clinic_day(organization, timezone.now().astimezone(zone).date() + datetime.timedelta(days=1))


def test_tomorrow_lists_holds_by_the_hold_lead_and_reminders_by_the_cadence(organization, location):
    from org_profile.enums import PaymentGateway
    from transactions.enums import PaymentRequestKind, SavedCardStatus
    from transactions.models import SavedCard
    from transactions.selectors.collection_schedule import TOMORROW_SOURCES, automation_planned
    from transactions.services.saved_cards import card_on_file_consent_text

    rules_on(organization, copay_request_enabled=False, hold_enabled=True, hold_hours_before=24,
             balance_request_enabled=True, balance_reminder_days=[1, 5])
    start, end = _tomorrow(organization)
    carded = PatientFactory(organization=organization)
    SavedCard.objects.create(organization=organization, patient=carded, vendor=PaymentGateway.SANDBOX, status=SavedCardStatus.ACTIVE,
                             gateway_customer_id="cus_1", consent_text=card_on_file_consent_text(organization), consented_at=timezone.now())
    AppointmentFactory(patient=carded, location=location, starts_at=start + datetime.timedelta(hours=24 + 10), copay_cents=4000)
    AppointmentFactory(patient=carded, location=location, starts_at=end + datetime.timedelta(hours=24 + 1))  # the day after
    owing = PatientFactory(organization=organization)
    from ehr_sync.models import Balance

    Balance.objects.create(organization=organization, patient=owing, amount_due_cents=9000, as_of=timezone.now())
    request = PaymentRequest.objects.create(
        organization=organization, patient=owing, location=location, kind=PaymentRequestKind.BALANCE, billing_item="Account balance",
        amount_cents=9000, expires_at=timezone.now() + datetime.timedelta(days=30), automation_rule=CollectionRule.BALANCE_REQUEST,
    )
    PaymentRequest.objects.filter(pk=request.pk).update(created_at=start + datetime.timedelta(hours=3) - datetime.timedelta(days=1))

    planned = automation_planned(organization=organization, start=start, end=end)

    assert [(a.rule, a.patient_id, a.amount_cents) for a in planned] == [
        (CollectionRule.BALANCE_REMINDER, owing.pk, 9000),
        (CollectionRule.HOLD_BEFORE_VISIT, carded.pk, 4000),
    ]
    assert planned[0].payment_request_id == request.pk
    assert all(start <= a.at < end for a in planned)
    # The list of sources is what the payment-plan instalments join at merge.
    assert automation_planned(organization=organization, start=start, end=end, sources=TOMORROW_SOURCES[:1]) == []


def test_the_beat_task_runs_a_pass_across_clinics(organization, location, other_organization, django_capture_on_commit_callbacks):
    from transactions.tasks import collection_schedule_run as task

    rules_on(organization)
    rules_on(other_organization)
    AppointmentFactory(patient=PatientFactory(organization=organization), location=location, starts_at=hours_from_now(5))
    AppointmentFactory(patient=PatientFactory(organization=other_organization), starts_at=hours_from_now(6))

    with django_capture_on_commit_callbacks(execute=True):
        result = task.delay().get()

    assert result["copay_sent"] == 2
    assert PaymentRequest.objects.filter(automation_rule=CollectionRule.COPAY_BEFORE_VISIT).count() == 2
