import pytest
from django.contrib import admin
from django.urls import reverse

from ehr_sync.models import Appointment, Balance, Patient
from lumapay.models import AuditEvent
from tests.factories import AppointmentFactory, BalanceFactory, UserFactory
from transactions.models import (
    Dispute,
    GatewayEvent,
    PaymentRequest,
    PaymentRequestDelivery,
    Refund,
    SavedCard,
    Transaction,
    TransactionEvent,
)

from .payments import paid_transaction

pytestmark = pytest.mark.django_db

REGISTERED = [
    PaymentRequest, PaymentRequestDelivery, Transaction, Refund, TransactionEvent, GatewayEvent,
    Patient, Appointment, Balance, AuditEvent,
]
READ_ONLY = [
    PaymentRequest, PaymentRequestDelivery, Transaction, Refund, TransactionEvent, GatewayEvent, AuditEvent,
    Appointment, Balance, Dispute, SavedCard,
]


@pytest.fixture
def operator(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def ledger(organization, other_organization, manager, patient, location):
    """A refunded payment with its request and deliveries, and one row of every other kind; a
    second organization, so the organization filter has a choice to offer."""
    import datetime

    from django.utils import timezone

    from transactions.services.refunds import refund_create

    request = PaymentRequest.objects.create(
        organization=organization, patient=patient, location=location, kind="copay",
        billing_item="Office visit copay", amount_cents=5000, expires_at=timezone.now() + datetime.timedelta(days=30),
    )
    PaymentRequestDelivery.objects.create(
        organization=organization, payment_request=request, channel="email", destination=patient.email
    )
    payment = paid_transaction(
        organization=organization, patient=patient, location=location, amount_cents=5000, payment_request=request
    )
    refund_create(organization=organization, actor=manager, transaction=payment, amount_cents=1000, reason="Overpaid")
    GatewayEvent.objects.create(
        gateway="sandbox", event_id="evt_sbx_1", event_type="charge.succeeded", organization=organization, payload={}
    )
    AppointmentFactory(patient=patient, organization=organization, location=location)
    BalanceFactory(patient=patient, organization=organization)
    Dispute.objects.create(
        organization=organization, transaction=payment, gateway_dispute_id="dp_1", amount_cents=4000,
        reason="fraudulent", status="needs_response",
    )
    SavedCard.objects.create(
        organization=organization, patient=patient, vendor="stripe", status="active", gateway_customer_id="cus_1",
        card_brand="visa", card_last4="4242", consent_text="I agree to save my card.", consented_at=timezone.now(),
    )
    return payment


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m.__name__)
def test_every_list_has_an_organization_filter_and_search(operator_client, ledger, model):
    model_admin = admin.site._registry[model]
    assert "organization" in model_admin.list_filter
    assert model_admin.search_fields

    response = operator_client.get(_url(model, "changelist"), {"q": "abc"})
    assert response.status_code == 200
    response = operator_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    assert 'data-filter-title="organization"' in response.content.decode()
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_ledger_and_derived_rows_cannot_be_added_changed_or_deleted(operator_client, operator, ledger, model, rf):
    row = model.objects.order_by("pk").first()
    model_admin = admin.site._registry[model]
    request = rf.get("/")
    request.user = operator
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, row) is False
    assert model_admin.has_delete_permission(request, row) is False
    assert set(model_admin.get_readonly_fields(request, row)) == {field.name for field in model._meta.fields}
    assert "delete_selected" not in model_admin.get_actions(request)

    before = list(model.objects.order_by("pk").values())
    assert operator_client.get(_url(model, "change", row.pk)).status_code == 200
    assert operator_client.post(_url(model, "change", row.pk), {}).status_code == 403
    assert operator_client.post(_url(model, "delete", row.pk), {"post": "yes"}).status_code == 403
    assert operator_client.get(_url(model, "add")).status_code == 403
    assert list(model.objects.order_by("pk").values()) == before


def test_patients_can_be_edited_but_never_deleted(operator_client, ledger, patient):
    response = operator_client.get(_url(Patient, "change", patient.pk))
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields}
    data.update({"first_name": "Mariana", "date_of_birth": "1984-03-09", "sms_consent": "on"})
    data = {key: value for key, value in data.items() if value is not None}

    response = operator_client.post(_url(Patient, "change", patient.pk), data)

    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.first_name == "Mariana"
    assert operator_client.post(_url(Patient, "delete", patient.pk), {"post": "yes"}).status_code == 403
    assert operator_client.get(_url(Patient, "add")).status_code == 403
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_gateway_events_offer_the_replay_action(operator, rf):
    request = rf.get("/")
    request.user = operator

    actions = admin.site._registry[GatewayEvent].get_actions(request)

    assert "replay_selected" in actions
    assert actions["replay_selected"][2] == "Replay selected events"


def test_operators_without_change_rights_cannot_replay(rf, db):
    viewer = UserFactory(is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_gatewayevent"))
    viewer = type(viewer).objects.get(pk=viewer.pk)
    request = rf.get("/")
    request.user = viewer

    assert "replay_selected" not in admin.site._registry[GatewayEvent].get_actions(request)


def test_the_transaction_page_shows_its_ledger(operator_client, ledger):
    body = operator_client.get(_url(Transaction, "change", ledger.pk)).content.decode()

    assert "refund_requested" in body or "Refund requested" in body
    assert "Overpaid" in body


def test_replaying_an_event_from_the_admin_changes_no_money(operator_client, operator, organization):
    from lumapay.models import AuditEvent as Audit
    from transactions.enums import GatewayEventStatus

    payment = paid_transaction(organization=organization, amount_cents=5000)
    stored = GatewayEvent.objects.get(event_type="charge.succeeded")
    ledger_before = list(TransactionEvent.objects.filter(transaction=payment).values_list("pk", "kind", "amount_cents"))

    response = operator_client.post(
        _url(GatewayEvent, "changelist"),
        {"action": "replay_selected", "_selected_action": [stored.pk]},
        follow=True,
    )

    assert [str(message) for message in response.context["messages"]] == ["Replayed 1 event."]
    stored.refresh_from_db()
    assert stored.status == GatewayEventStatus.PROCESSED
    assert list(TransactionEvent.objects.filter(transaction=payment).values_list("pk", "kind", "amount_cents")) == ledger_before
    replayed = Audit.objects.get(action="gateway_event.replayed")
    assert (replayed.actor_user, replayed.organization) == (operator, organization)
