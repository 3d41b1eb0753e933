"""The payment panels of the patient profile and the Hub: requests, transactions and cards on file.

ehr_sync owns the patient pages and sits below transactions, so it cannot read payments itself;
``TransactionsConfig.ready`` registers these partials and their context with
``ehr_sync.patient_panels`` and the patient pages render them in their slots.
"""

from __future__ import annotations

from django.http import HttpRequest

from ehr_sync.models import Patient
from ehr_sync.patient_panels import PatientPanels

from ..enums import PaymentRequestStatus
from ..forms.saved_cards import SavedCardChargeForm, SavedCardHoldForm
from ..selectors.holds import appointments_held
from ..selectors.patients import patient_requestable_appointments, patient_transactions
from ..selectors.payment_requests import payment_requests_of_patient
from ..selectors.saved_cards import card_on_file_offered, saved_cards_active
from ..services.payments import payment_request_lock_remaining
from ..services.saved_cards import saved_card_roles_text

_TEMPLATES = "transactions/patient_panels"


def patient_payment_context(request: HttpRequest, patient: Patient) -> dict:
    """What the payment panels of ``patient``'s profile show to the signed-in member."""
    membership = request.membership
    organization = request.organization
    cards_offered = card_on_file_offered(organization)
    # Members whose role may not use cards on file see the cards, and may remove one, but get no
    # charge or hold form.
    may_use_cards = cards_offered and organization.role_may_use_saved_cards(membership.role)
    payment_requests = list(payment_requests_of_patient(membership=membership, patient=patient))
    return {
        "card_on_file_offered": cards_offered,
        "saved_cards": saved_cards_active(organization=organization, patient=patient) if cards_offered else [],
        "may_use_saved_cards": may_use_cards,
        "saved_card_roles_text": saved_card_roles_text(organization) if cards_offered else "",
        "saved_card_charge_max_cents": organization.saved_card_charge_max_cents,
        "saved_card_currency": organization.currency,
        "card_charge_form": SavedCardChargeForm(membership=membership) if may_use_cards else None,
        "card_hold_form": SavedCardHoldForm(membership=membership, patient=patient) if may_use_cards else None,
        # Booked appointments with a copay held: "Check in" marks them arrived and captures it.
        "held_appointment_ids": appointments_held(membership=membership, patient=patient) if may_use_cards else set(),
        "requestable_appointment_ids": set(
            patient_requestable_appointments(membership=membership, patient=patient).values_list("id", flat=True)
        ),
        "payment_requests": payment_requests,
        # Read "Link locked", as on the request's own page, by the same rule.
        "locked_request_ids": {
            payment_request.pk
            for payment_request in payment_requests
            if payment_request.status == PaymentRequestStatus.OPEN and payment_request_lock_remaining(payment_request)
        },
        "transactions": patient_transactions(membership=membership, patient=patient),
        "open_status": PaymentRequestStatus.OPEN,
    }


PAYMENT_PANELS = PatientPanels(
    templates={
        "hub_row_actions": f"{_TEMPLATES}/_hub_row_actions.html",
        "profile_actions": f"{_TEMPLATES}/_profile_actions.html",
        "balance_actions": f"{_TEMPLATES}/_balance_actions.html",
        "before_appointments": f"{_TEMPLATES}/_saved_cards.html",
        "appointment_actions": f"{_TEMPLATES}/_appointment_actions.html",
        "after_appointments": f"{_TEMPLATES}/_requests_and_transactions.html",
    },
    context=patient_payment_context,
)
