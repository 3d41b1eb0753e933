"""Staff pages for payment requests: send one to a patient, see it, re-send it, cancel it.

Every lookup is scoped to the current organization and, for sub-account users, to their
locations: anything outside that is "not found", never "forbidden".
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from ehr_sync.selectors import patient_get
from lumapay.enums import AuditAction, audit_action_label
from lumapay.dates import format_datetime
from lumapay.errors import ApplicationError
from lumapay.money import format_cents
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, found_or_404, membership_required

from ..enums import DeliveryChannel, PaymentRequestStatus
from ..forms.payment_requests import PaymentRequestForm
from ..models import PaymentRequest
from ..selectors.payment_requests import (
    payment_request_audit_events,
    payment_request_deliveries,
    payment_request_get,
)
from ..selectors.ledger import CHANNEL_WORDS, actor_label, channels_text, organization_zone, rule_label
from ..services import payment_requests as services
from ..services.payments import payment_request_lock_remaining

@dataclass(frozen=True)
class HistoryEntry:
    label: str
    actor: str
    created_at: datetime.datetime
    details: list[str]
    is_failure: bool


@membership_required()
@require_http_methods(["GET", "POST"])
def payment_request_new(request, patient_pk):
    patient = found_or_404(patient_get(organization=request.organization, patient_id=patient_pk), "No such patient.")
    phi_access_record(request=request, patients=[patient])
    form = PaymentRequestForm(request.POST or None, membership=request.membership, patient=patient)
    form.prefill_from_appointment(request.GET.get("appointment"))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            payment_request = services.payment_request_send(
                organization=request.organization,
                actor=request.user,
                patient=patient,
                location=data["location"],
                kind=data["kind"],
                billing_item=data["billing_item"],
                amount_cents=data["amount"],
                note=data["note"],
                appointment=data["appointment"],
            )
        except ApplicationError as error:
            form.add_application_error(error)
        else:
            channels = " and ".join(CHANNEL_WORDS[d.channel] for d in payment_request.deliveries.order_by("id"))
            messages.success(
                request,
                f"Payment request for {format_cents(payment_request.amount_cents, payment_request.currency)} "
                f"sent to {patient.full_name} by {channels}.",
            )
            return redirect("transactions:payment_request_detail", pk=payment_request.pk)
    return render(
        request,
        "transactions/payment_requests/payment_request_new.html",
        {
            "nav": "hub",
            "patient": patient,
            "form": form,
            "is_reachable": bool(patient.email or patient.can_receive_sms),
            "has_locations": form.fields["location"].queryset.exists(),
        },
    )


@membership_required()
@require_safe
def payment_request_detail(request, pk):
    payment_request = _payment_request_or_404(request, pk)
    phi_access_record(request=request, organization=request.organization, patients=[payment_request.patient_id])
    is_open = payment_request.status == PaymentRequestStatus.OPEN
    return render(
        request,
        "transactions/payment_requests/payment_request_detail.html",
        {
            "nav": "hub",
            "payment_request": payment_request,
            # Locked by wrong dates of birth: until when, in the clinic's time, and who may help.
            "locked_until": payment_request.verification_locked_until
            if is_open and payment_request_lock_remaining(payment_request)
            else None,
            "organization_zone": organization_zone(request.organization),
            "may_manage_link": request.membership.role in MANAGERS,
            "deliveries": payment_request_deliveries(payment_request=payment_request),
            "history": _history(payment_request_audit_events(payment_request=payment_request)),
            "is_open": is_open,
            "dev_outbox_enabled": settings.DEV_OUTBOX_ENABLED,
        },
    )


@membership_required()
@require_POST
def payment_request_resend(request, pk):
    payment_request = _payment_request_or_404(request, pk)
    try:
        services.payment_request_resend(
            organization=request.organization, actor=request.user, payment_request=payment_request
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"The payment request was sent again. Its link now works for another {settings.PAYMENT_LINK_TTL_DAYS} days.",
        )
    return _back(request, payment_request)


@membership_required(roles=MANAGERS)
@require_POST
def payment_request_unlock(request, pk):
    """A manager lifts the lock wrong dates of birth put on the link."""
    payment_request = _payment_request_or_404(request, pk)
    try:
        services.pay_link_unlock(organization=request.organization, actor=request.user, payment_request=payment_request)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The payment link is unlocked: the patient can enter their date of birth again.")
    return redirect("transactions:payment_request_detail", pk=payment_request.pk)


@membership_required(roles=MANAGERS)
@require_POST
def payment_request_replace_link(request, pk):
    """A manager sends the patient a fresh link; the old one stops working."""
    payment_request = _payment_request_or_404(request, pk)
    try:
        services.pay_link_replace(organization=request.organization, actor=request.user, payment_request=payment_request)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "A fresh payment link was sent to the patient. The old link no longer works.")
    return redirect("transactions:payment_request_detail", pk=payment_request.pk)


@membership_required()
@require_http_methods(["GET", "POST"])
def payment_request_cancel(request, pk):
    """Cancel a request, after a confirmation page: a GET, or a POST without ``confirmed`` (a form
    elsewhere that has no confirmation of its own), shows the page; its form posts ``confirmed``."""
    payment_request = _payment_request_or_404(request, pk)
    if request.method == "GET" or request.POST.get("confirmed") != "1":
        if payment_request.status != PaymentRequestStatus.OPEN:
            return redirect("transactions:payment_request_detail", pk=payment_request.pk)
        data = request.POST if request.method == "POST" else request.GET
        phi_access_record(request=request, organization=request.organization, patients=[payment_request.patient_id])
        return render(
            request,
            "transactions/payment_requests/payment_request_cancel.html",
            {
                "nav": "hub",
                "payment_request": payment_request,
                "reason": data.get("reason", ""),
                "next": _safe_next(request, data.get("next", "")),
            },
        )
    try:
        services.payment_request_cancel(
            organization=request.organization,
            actor=request.user,
            payment_request=payment_request,
            reason=request.POST.get("reason", ""),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The payment request was cancelled. Its link no longer works.")
    return _back(request, payment_request)


def _safe_next(request, next_url: str) -> str:
    """``next_url`` when it stays on this site, else empty."""
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return ""


def _back(request, payment_request):
    """Back to the page the action was taken from (the patient profile), or to the request."""
    next_url = _safe_next(request, request.POST.get("next", ""))
    if next_url:
        return redirect(next_url)
    return redirect("transactions:payment_request_detail", pk=payment_request.pk)


def _history(audit_events) -> list[HistoryEntry]:
    """The request's audit events, in words a clinic's staff reads."""
    entries = []
    for event in audit_events:
        changes = event.changes or {}
        details = []
        if changes.get("channels") or changes.get("channel"):
            details.append(channels_text(changes))
        if event.action in (AuditAction.PAYMENT_REQUEST_RESENT, AuditAction.PAYMENT_REQUEST_MOVED) and changes.get("expires_at"):
            expires_at = datetime.datetime.fromisoformat(changes["expires_at"][1])
            details.append(f"The link now works until {format_datetime(expires_at)}")
        if changes.get("error_message"):
            details.append(changes["error_message"])
        if changes.get("reason"):
            details.append(f"Reason: {changes['reason']}")
        if changes.get("reminder"):
            details.append(f"Reminder {changes['reminder']}, {changes.get('days_after')} days after the request")
        if changes.get("rule"):
            details.append(f"By the rule: {rule_label(changes['rule'])}")
        entries.append(
            HistoryEntry(
                label=audit_action_label(event.action),
                actor=actor_label(event.actor_type, event.actor_user, event.ip_address),
                created_at=event.created_at,
                details=details,
                is_failure=event.action == AuditAction.PAYMENT_REQUEST_DELIVERY_FAILED,
            )
        )
    return entries


def _payment_request_or_404(request, pk: int) -> PaymentRequest:
    """The request with this id at the member's locations, or 404 (another's is "not found")."""
    payment_request = payment_request_get(membership=request.membership, payment_request_id=pk)
    return found_or_404(payment_request, "No such payment request.")
