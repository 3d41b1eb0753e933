"""Signed in to organization B, every staff page asked for organization A's ids answers 404.

The test walks the URL configuration, so a new staff page that takes an id fails here until it
is listed in OBJECT_FOR_URL (and so until someone has thought about its tenant scope).
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from org_profile.enums import Role
from transactions.enums import ExportStatus, PaymentRequestKind
from transactions.models import PaymentPlan, PaymentRequest, SavedCard, TransactionExport
from transactions.services.transaction_open import transaction_open
from payouts.models import Payout
from intake_forms.models import FormFile
from intake_forms.services import form_create, form_publish, question_add, section_add, submission_start

from .factories import AppointmentFactory, LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory

STAFF_NAMESPACES = ("transactions", "patients", "payouts", "intake_forms")

# url name -> which of organization A's objects its id names.
OBJECT_FOR_URL = {
    "patients:profile": "patient",
    "patients:edit": "patient",
    "patients:access_log": "patient",
    "transactions:payment_request_new": "patient",
    "transactions:payment_request_detail": "payment_request",
    "transactions:payment_request_resend": "payment_request",
    "transactions:payment_request_cancel": "payment_request",
    "transactions:payment_request_unlock": "payment_request",
    "transactions:payment_request_replace_link": "payment_request",
    "transactions:transaction_detail": "transaction",
    "transactions:transaction_refund": "transaction",
    "transactions:transaction_receipt": "transaction",
    "transactions:transaction_capture": "transaction",
    "transactions:transaction_release": "transaction",
    # The posting's id is looked up among the transaction's own postings.
    "transactions:ehr_posting_retry": "transaction",
    # A day, not an id: the file holds the signed-in organization's own events of that day only (an
    # id in its place is no date: 404).
    "transactions:ehr_posting_file_download": "transaction",
    "transactions:saved_card_charge": "saved_card",
    "transactions:saved_card_hold": "saved_card",
    "transactions:saved_card_remove": "saved_card",
    "transactions:appointment_check_in": "appointment",
    "transactions:payment_plan_new": "patient",
    "transactions:payment_plan_cancel": "payment_plan",
    "transactions:export_detail": "export",
    "transactions:export_download": "export",
    "payouts:detail": "payout",
    "intake_forms:form_edit": "intake_form",
    "intake_forms:form_send": "intake_form",
    "intake_forms:submission_detail": "form_submission",
    "intake_forms:submission_pdf": "form_submission",
    "intake_forms:form_file": "form_file",
}


def _staff_urls_with_ids():
    found = []

    def walk(patterns, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and namespace in STAFF_NAMESPACES and pattern.pattern.converters:
                found.append((f"{namespace}:{pattern.name}", list(pattern.pattern.converters)))

    walk(get_resolver().url_patterns, None)
    return found


@pytest.fixture
def organization_a_objects(db):
    organization = OrganizationFactory(name="Organization A")
    location = LocationFactory(organization=organization)
    patient = PatientFactory(organization=organization)
    appointment = AppointmentFactory(patient=patient, organization=organization, location=location)
    payment_request = PaymentRequest.objects.create(
        organization=organization,
        patient=patient,
        location=location,
        kind=PaymentRequestKind.COPAY,
        billing_item="Office visit copay",
        amount_cents=2500,
        expires_at="2099-01-01T00:00:00Z",
    )
    transaction = transaction_open(organization=organization, payment_request=payment_request, vendor="sandbox")
    export = TransactionExport.objects.create(
        organization=organization,
        requested_by=MembershipFactory(organization=organization, role=Role.MANAGER).user,
        status=ExportStatus.READY,
        total_rows=1,
        expires_at="2099-01-01T00:00:00Z",
    )
    saved_card = SavedCard.objects.create(
        organization=organization,
        patient=patient,
        vendor="stripe",
        status="active",
        gateway_customer_id="cus_organization_a",
        gateway_payment_method_id="pm_organization_a",
        card_brand="visa",
        card_last4="4242",
        consent_text="I agree.",
        consented_at="2026-01-01T00:00:00Z",
    )
    payment_plan = PaymentPlan.objects.create(
        organization=organization,
        patient=patient,
        location=location,
        saved_card=saved_card,
        billing_item="Balance after insurance",
        total_cents=12000,
        instalment_count=3,
        consent_text="I agree.",
        consented_at="2026-01-01T00:00:00Z",
        consent_source="staff",
    )
    payout = Payout.objects.create(
        organization=organization, gateway="sandbox", gateway_payout_id="po_organization_a", amount_cents=10_000,
        currency="usd", status="paid", created_at="2026-01-01T00:00:00Z", arrival_date="2026-01-03",
    )
    manager = MembershipFactory(organization=organization, role=Role.MANAGER).user
    intake_form = form_create(organization=organization, actor=manager, title="Intake")
    question_add(
        organization=organization, actor=manager,
        section=section_add(organization=organization, actor=manager, form=intake_form, title="About you"),
        values={"kind": "file", "label": "Insurance card"},
    )
    form_publish(organization=organization, actor=manager, form=intake_form)
    form_submission = submission_start(form=intake_form, patient=patient)
    form_file = FormFile.objects.create(
        organization=organization, submission=form_submission, question_key="k", file_name="card.png",
        content_type="image/png", size=1, data=b"x",
    )
    return {
        "intake_form": intake_form,
        "form_submission": form_submission,
        "form_file": form_file,
        "payout": payout,
        "patient": patient,
        "payment_request": payment_request,
        "transaction": transaction,
        "export": export,
        "saved_card": saved_card,
        "appointment": appointment,
        "payment_plan": payment_plan,
    }


def test_every_staff_url_with_an_id_is_covered_here():
    names = {name for name, _ in _staff_urls_with_ids()}
    assert names, "no staff URL with an id was found: the URL walk is broken"
    assert names <= set(OBJECT_FOR_URL), f"add these pages to OBJECT_FOR_URL: {sorted(names - set(OBJECT_FOR_URL))}"


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.MANAGER, Role.STAFF])
def test_organization_b_gets_404_for_every_page_of_organization_a(client, organization_a_objects, role):
    organization_b = OrganizationFactory(name="Organization B")
    location_b = LocationFactory(organization=organization_b)
    user_b = MembershipFactory(organization=organization_b, role=role, locations=[location_b]).user
    client.force_login(user_b)

    refused_by_role, answered_404 = set(), set()
    for name, converters in _staff_urls_with_ids():
        target = organization_a_objects[OBJECT_FOR_URL[name]]
        url = reverse(name, kwargs={converter: target.pk for converter in converters})
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if response.status_code == 403:
                # A page this role may not use at all: fine, as long as it says the same for an id
                # that exists nowhere, so the answer confirms nothing about organization A.
                missing = reverse(name, kwargs={converter: 987654321 for converter in converters})
                assert getattr(client, method)(missing).status_code == 403, f"{name} leaks existence"
                refused_by_role.add(name)
                continue
            assert response.status_code in (404, 405), f"{method.upper()} {url} ({name}) answered {response.status_code}"
            if response.status_code == 404:
                answered_404.add(name)
    # Every page answered 404 to at least one method, unless this role may not use it at all.
    assert answered_404 | refused_by_role == {name for name, _ in _staff_urls_with_ids()}
