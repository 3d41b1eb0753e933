"""One transaction: its details, its timeline, and refunds."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from lumapay.audit import audit_event_record, client_ip
from lumapay.errors import ApplicationError
from lumapay.models import ActorType
from lumapay.money import format_cents
from org_profile.access import MANAGERS, membership_required

from ..enums import RefundStatus
from ..forms.refunds import RefundForm
from ..selectors.ledger import (
    refund_reserved_cents,
    transaction_get,
    transaction_refundable_cents,
    transaction_refunds,
    transaction_timeline,
)
from ..services.refunds import refund_create, refund_retry


@membership_required()
def transaction_detail(request, pk):
    transaction = transaction_get(membership=request.membership, pk=pk)
    audit_event_record(
        organization=request.organization,
        action="transaction.viewed",
        actor_type=ActorType.STAFF,
        actor_user=request.user,
        patient=transaction.patient,
        transaction=transaction,
        ip_address=client_ip(request),
    )
    return _detail(request, transaction)


@require_POST
@membership_required(roles=MANAGERS)
def transaction_refund(request, pk):
    """Refund part or all of a transaction; with ``retry_refund`` in the form, send a refund that is
    still waiting for the processor again."""
    transaction = transaction_get(membership=request.membership, pk=pk)
    if "retry_refund" in request.POST:
        return _retry(request, transaction)

    form = RefundForm(
        request.POST,
        refundable_cents=transaction_refundable_cents(transaction=transaction),
        currency=transaction.currency,
    )
    if not form.is_valid():
        return _detail(request, transaction, form=form, status=400)
    try:
        refund = refund_create(
            organization=request.organization,
            actor=request.user,
            transaction=transaction,
            amount_cents=form.cleaned_data["amount_cents"],
            reason=form.cleaned_data["reason"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        transaction.refresh_from_db()
        return _detail(request, transaction, form=form, status=400)
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
    else:
        messages.warning(
            request,
            f"The payment processor has not confirmed the refund of {amount} yet. The amount stays reserved; "
            "press Retry in the refunds table to send it again.",
        )


def _detail(request, transaction, *, form=None, status=200):
    refundable = transaction_refundable_cents(transaction=transaction)
    can_refund = request.membership.role in MANAGERS and refundable > 0
    if can_refund and form is None:
        form = RefundForm(refundable_cents=refundable, currency=transaction.currency)
    context = {
        "transaction": transaction,
        "refunds": transaction_refunds(transaction=transaction),
        "timeline": transaction_timeline(transaction=transaction),
        "reserved_cents": refund_reserved_cents(transaction=transaction),
        "refundable_cents": refundable,
        "can_refund": can_refund,
        "form": form if can_refund else None,
        "nav": "dashboard",
    }
    return render(request, "transactions/dashboard/detail.html", context, status=status)
