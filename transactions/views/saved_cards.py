"""Staff pages for cards on file: charge a patient's saved card, hold a copay before a visit,
capture it at check-in or release it, and remove a card. Each view parses the form and calls one
service; only clinics that take payments through Stripe have these pages (404 otherwise)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.money import format_cents
from org_profile.access import found_or_404, membership_required

from ..enums import PaymentRequestKind, TransactionStatus
from ..forms.saved_cards import AuthorizationReleaseForm, SavedCardChargeForm, SavedCardHoldForm
from ..selectors.holds import appointment_for_check_in
from ..selectors.ledger import transaction_get
from ..selectors.saved_cards import card_on_file_offered, saved_card_get
from ..services.holds import appointment_check_in
from ..services.saved_cards import (
    authorization_capture,
    authorization_release,
    saved_card_charge,
    saved_card_refusal_text,
    saved_card_remove,
)


def _require_card_role(request) -> None:
    """403 for a role the organization does not let use cards on file. Checked before the lookup,
    so the answer says nothing about the id; the service checks again (and audits the refusal)."""
    if not request.organization.role_may_use_saved_cards(request.membership.role):
        raise PermissionDenied(saved_card_refusal_text(request.organization))


def _form_errors(request, form) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


def _tell_charge(request, transaction, *, held: bool) -> None:
    amount = format_cents(transaction.amount_cents, transaction.currency)
    if transaction.status == TransactionStatus.FAILED:
        messages.error(request, f"The card was not charged: {transaction.last_error}")
    elif transaction.status == TransactionStatus.PENDING:
        messages.warning(request, f"The payment processor has not confirmed the {amount} yet; this page updates when it does.")
    elif held:
        messages.success(request, f"Held {amount} on the card until check-in.")
    else:
        messages.success(request, f"Charged {amount} to the card on file.")


@require_POST
@membership_required()
def saved_card_charge_view(request, pk):
    _require_card_role(request)
    saved_card = found_or_404(saved_card_get(membership=request.membership, pk=pk))
    form = SavedCardChargeForm(request.POST, membership=request.membership)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("patients:profile", pk=saved_card.patient_id)
    try:
        transaction = saved_card_charge(
            organization=request.organization,
            actor=request.user,
            saved_card=saved_card,
            amount_cents=form.cleaned_data["amount"],
            kind=form.cleaned_data["kind"],
            billing_item=form.cleaned_data["billing_item"],
            location=form.cleaned_data["location"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("patients:profile", pk=saved_card.patient_id)
    _tell_charge(request, transaction, held=False)
    return redirect("transactions:transaction_detail", pk=transaction.pk)


@require_POST
@membership_required()
def saved_card_hold(request, pk):
    """Hold an upcoming appointment's copay on the card, to be captured at check-in."""
    _require_card_role(request)
    saved_card = found_or_404(saved_card_get(membership=request.membership, pk=pk))
    form = SavedCardHoldForm(request.POST, membership=request.membership, patient=saved_card.patient)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("patients:profile", pk=saved_card.patient_id)
    appointment = form.cleaned_data["appointment"]
    try:
        transaction = saved_card_charge(
            organization=request.organization,
            actor=request.user,
            saved_card=saved_card,
            amount_cents=appointment.copay_cents,
            kind=PaymentRequestKind.COPAY,
            billing_item="Office visit copay",
            location=appointment.location,
            appointment=appointment,
            hold_only=True,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("patients:profile", pk=saved_card.patient_id)
    _tell_charge(request, transaction, held=True)
    return redirect("transactions:transaction_detail", pk=transaction.pk)


@require_POST
@membership_required()
def saved_card_remove_view(request, pk):
    saved_card = found_or_404(saved_card_get(membership=request.membership, pk=pk))
    try:
        saved_card = saved_card_remove(saved_card=saved_card, actor=request.user, ip_address=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Removed {saved_card}: it will not be charged again.")
    return redirect("patients:profile", pk=saved_card.patient_id)


def _held_transaction(request, pk):
    if not card_on_file_offered(request.organization):
        raise Http404("This clinic does not hold amounts on cards.")
    return found_or_404(transaction_get(membership=request.membership, pk=pk))


@require_POST
@membership_required()
def transaction_capture(request, pk):
    """Charge the amount held on the card (the patient checked in)."""
    _require_card_role(request)
    transaction = _held_transaction(request, pk)
    try:
        transaction = authorization_capture(organization=request.organization, actor=request.user, transaction=transaction)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Captured {format_cents(transaction.charged_cents, transaction.currency)}.")
    return redirect("transactions:transaction_detail", pk=transaction.pk)


@require_POST
@membership_required()
def transaction_release(request, pk):
    """Let the held amount go without charging it (the visit was cancelled or missed)."""
    _require_card_role(request)
    transaction = _held_transaction(request, pk)
    form = AuthorizationReleaseForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("transactions:transaction_detail", pk=transaction.pk)
    try:
        authorization_release(
            organization=request.organization, actor=request.user, transaction=transaction, reason=form.cleaned_data["reason"]
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Released the hold of {format_cents(transaction.amount_cents, transaction.currency)}. Nothing was charged.")
    return redirect("transactions:transaction_detail", pk=transaction.pk)


@require_POST
@membership_required()
def appointment_check_in_view(request, pk):
    """The patient is here: mark the appointment arrived and capture the copay held for it."""
    _require_card_role(request)
    if not card_on_file_offered(request.organization):
        raise Http404("This clinic does not hold amounts on cards.")
    appointment = found_or_404(appointment_for_check_in(membership=request.membership, pk=pk))
    try:
        captured = appointment_check_in(organization=request.organization, actor=request.user, appointment=appointment)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("patients:profile", pk=appointment.patient_id)
    if captured:
        total = sum(transaction.charged_cents for transaction in captured)
        messages.success(request, f"Checked in. Captured {format_cents(total, captured[0].currency)} held on the card.")
        return redirect("transactions:transaction_detail", pk=captured[0].pk)
    messages.success(request, "Checked in. Nothing was held on the card to capture (or it was captured already).")
    return redirect("patients:profile", pk=appointment.patient_id)
