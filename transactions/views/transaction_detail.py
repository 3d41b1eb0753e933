"""One transaction: its details, its audit timeline, its receipt, and refunds."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from lumapay.audit import audit_event_record, client_ip
from lumapay.enums import AuditAction
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required

from ..enums import RefundStatus, TransactionStatus
from ..forms.refunds import RefundForm
from ..forms.saved_cards import AuthorizationReleaseForm
from ..selectors.ledger import (
    organization_zone,
    refund_reserved_cents,
    timeline_problems,
    transaction_get,
    transaction_net_cents,
    transaction_refundable_cents,
    transaction_refunds,
    transaction_timeline,
)
from ..selectors.ehr_postings import transaction_ehr_postings
from ..selectors.saved_cards import card_on_file_offered
from ..services.receipt_documents import ReceiptUnavailable, receipt_download
from ..services.refunds import refund_create, refund_retry, refund_roles_text
from ..services.saved_cards import saved_card_roles_text
from ..transaction_panels import transaction_panel_context, transaction_panel_templates


@membership_required()
def transaction_detail(request, pk):
    transaction = found_or_404(transaction_get(membership=request.membership, pk=pk))
    audit_event_record(
        organization=request.organization,
        action=AuditAction.TRANSACTION_VIEWED,
        actor_type=ActorType.STAFF,
        actor_user=request.user,
        patient=transaction.patient,
        transaction=transaction,
        ip_address=client_ip(request),
    )
    phi_access_record(request=request, organization=request.organization, patients=[transaction.patient_id])
    return _detail(request, transaction)


@require_GET
@membership_required()
def transaction_receipt(request, pk):
    """The receipt PDF, shown in the browser (to print) or saved (the page's link says download)."""
    transaction = found_or_404(transaction_get(membership=request.membership, pk=pk))
    try:
        pdf = receipt_download(
            organization=request.organization,
            actor=request.user,
            transaction=transaction,
            ip_address=client_ip(request),
        )
    except ReceiptUnavailable:
        raise Http404("This payment has no receipt.")
    phi_access_record(request=request, organization=request.organization, patients=[transaction.patient_id])
    return pdf_response(pdf, filename=f"receipt-{transaction.pk}.pdf")


def pdf_response(pdf: bytes, *, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    # A patient's document: never kept by a shared cache or the browser's back-forward cache.
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@membership_required()
def transaction_refund(request, pk):
    """Refund part or all of a transaction, in two steps: the form posts here and gets the
    confirmation page; the confirmation (``confirmed``) posts here again and refunds. With
    ``retry_refund``, send a refund still waiting for the processor again."""
    # The role check comes before the lookup, so the answer says nothing about the id.
    if not request.organization.role_may_refund(request.membership.role):
        raise PermissionDenied(f"In this organization, only {refund_roles_text(request.organization)} can refund payments.")
    transaction = found_or_404(transaction_get(membership=request.membership, pk=pk))
    # Every answer but a redirect shows the transaction's page (or its confirmation) with the patient.
    phi_access_record(request=request, organization=request.organization, patients=[transaction.patient_id])
    if "retry_refund" in request.POST:
        return _retry(request, transaction)

    refundable = transaction_refundable_cents(transaction=transaction)
    if "back" in request.POST or "fill_full" in request.POST:
        # Back from the confirmation keeps what was typed; "Full amount" fills in the remainder.
        form = RefundForm.redisplayed(
            request.POST, refundable_cents=refundable, currency=transaction.currency, in_full="fill_full" in request.POST
        )
        return _detail(request, transaction, form=form)
    form = RefundForm(request.POST, refundable_cents=refundable, currency=transaction.currency)
    if not form.is_valid():
        return _detail(request, transaction, form=form, status=400)
    amount_cents = form.cleaned_data["amount_cents"]
    if not form.cleaned_data["confirmed"]:
        return render(
            request,
            "transactions/dashboard/refund_confirm.html",
            {
                "transaction": transaction,
                "amount_cents": amount_cents,
                "reason": form.cleaned_data["reason"],
                "refundable_cents": refundable,
                "remainder_cents": refundable - amount_cents,
                "fields": form.confirmation_fields(),
                "nav": "dashboard",
            },
        )
    try:
        refund = refund_create(
            organization=request.organization,
            actor=request.user,
            transaction=transaction,
            amount_cents=amount_cents,
            reason=form.cleaned_data["reason"],
            idempotency_key=form.cleaned_data["idempotency_key"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        transaction.refresh_from_db()
        return _detail(request, transaction, status=400)
    _tell_outcome(request, refund)
    return redirect("transactions:transaction_detail", pk=transaction.pk)


def _retry(request, transaction):
    refund_id = request.POST.get("retry_refund", "")
    if not refund_id.isdigit():
        raise Http404
    refund = get_object_or_404(transaction.refunds.all(), pk=int(refund_id))
    try:
        refund = refund_retry(organization=request.organization, actor=request.user, refund=refund)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        _tell_outcome(request, refund)
    return redirect("transactions:transaction_detail", pk=transaction.pk)


def _tell_outcome(request, refund) -> None:
    amount = format_cents(refund.amount_cents, refund.currency)
    if refund.status == RefundStatus.SUCCEEDED:
        messages.success(request, f"Refunded {amount} to the patient's card.")
    elif refund.status == RefundStatus.FAILED:
        messages.error(request, f"The refund of {amount} failed: {refund.failure_message}")
    else:
        messages.warning(
            request,
            f"The payment processor has not confirmed the refund of {amount} yet. The amount stays reserved; "
            "press Retry in the refunds table to send it again.",
        )


def _detail(request, transaction, *, form=None, status=200):
    refundable = transaction_refundable_cents(transaction=transaction)
    may_refund = request.organization.role_may_refund(request.membership.role)
    can_refund = may_refund and refundable > 0
    if can_refund and form is None:
        form = RefundForm(refundable_cents=refundable, currency=transaction.currency)
    timeline = transaction_timeline(transaction=transaction)
    context = {
        "transaction": transaction,
        "refunds": transaction_refunds(transaction=transaction),
        "timeline": timeline,
        "problems": timeline_problems(timeline),
        "organization_zone": organization_zone(request.organization),
        "reserved_cents": refund_reserved_cents(transaction=transaction),
        "refundable_cents": refundable,
        "net_cents": transaction_net_cents(transaction=transaction),
        "may_refund": may_refund,
        "can_refund": can_refund,
        "form": form if can_refund else None,
        "has_receipt": transaction.charged_cents > 0,
        # A copay held on a card on file: captured at check-in, or released.
        "is_held": card_on_file_offered(request.organization) and transaction.status == TransactionStatus.AUTHORIZED,
        # Capture and release only for roles the organization lets use cards on file.
        "may_use_saved_cards": request.organization.role_may_use_saved_cards(request.membership.role),
        "saved_card_roles_text": saved_card_roles_text(request.organization),
        "release_form": AuthorizationReleaseForm(),
        # Posting to the EHR: each payment, refund and reversal, and "Post again" for managers.
        "ehr_posting": transaction_ehr_postings(transaction=transaction),
        "may_post_again": request.membership.role in MANAGERS,
        "nav": "dashboard",
        # What apps above transactions show about it (payouts: which payout carried its money).
        "transaction_panels": transaction_panel_templates(),
    }
    context.update(transaction_panel_context(request, transaction))
    return render(request, "transactions/dashboard/detail.html", context, status=status)
