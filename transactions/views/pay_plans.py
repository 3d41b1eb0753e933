"""The patient sets up a payment plan from their payment link (past the date-of-birth check, like
saving a card): choose one of the offered schedules (``PLAN_OFFERS`` monthly instalments, from
today), read the consent, agree; the first instalment is charged at once to the card on file. A
patient with no card on file saves one first, through the card-saving flow of the pay page, and
comes back here."""

from __future__ import annotations

from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from lumapay.errors import ApplicationError

from ..enums import PaymentRequestStatus as State
from ..gateways.base import GatewayError
from ..selectors.saved_cards import saved_cards_active
from ..services.payment_plans import (
    clinic_today,
    payment_plan_consent_text,
    payment_plan_create,
    plan_link_purpose,
    plan_offers_for,
)
from ..services.payments import payment_request_state
from ..services.saved_cards import card_on_file_consent_text
from .pay_page import _is_verified, _pay_page, _render, patient_ip


@require_http_methods(["GET", "HEAD", "POST"])
@_pay_page
def plan(request, payment_request, token):
    if not _is_verified(request, payment_request):
        return redirect("pay:verify", token=token)
    if payment_request_state(payment_request) != State.OPEN or plan_link_purpose(payment_request) != "offer":
        return redirect("pay:verify", token=token)
    organization = payment_request.organization
    card = saved_cards_active(organization=organization, patient=payment_request.patient).first()
    offers = plan_offers_for(organization=organization, total_cents=payment_request.amount_cents)
    context = {"card": card, "offers": offers, "card_consent_text": card_on_file_consent_text(organization)}
    if card is None:
        return _render(request, payment_request, token, "plan.html", context)

    chosen = next((offer for offer in offers if str(len(offer)) == request.POST.get("offer", "")), None)
    if request.method == "POST" and chosen is None:
        context["plan_error"] = _("Choose how many payments you would like.")
        return _render(request, payment_request, token, "plan.html", context, status=400)
    if chosen is not None:
        consent_text = payment_plan_consent_text(
            organization=organization, saved_card=card, billing_item=payment_request.billing_item, schedule=chosen
        )
        context.update({"chosen": chosen, "consent_text": consent_text})
        if request.POST.get("step") == "confirm":
            try:
                created = payment_plan_create(
                    organization=organization,
                    actor=None,
                    saved_card=card,
                    location=payment_request.location,
                    total_cents=payment_request.amount_cents,
                    instalment_count=len(chosen),
                    first_due_date=clinic_today(organization),
                    billing_item=payment_request.billing_item,
                    consent_given=request.POST.get("consent") == "yes",
                    consent_text=request.POST.get("consent_text", ""),
                    ip_address=patient_ip(request),
                    source_payment_request=payment_request,
                    charge_due_now=True,
                )
            except (ApplicationError, GatewayError) as error:
                context["plan_error"] = getattr(error, "message", "") or _("Tick the box to agree to the plan.")
                return _render(request, payment_request, token, "plan.html", context, status=400)
            return _render(request, payment_request, token, "plan_created.html", {"plan": created, "schedule": chosen})
    return _render(request, payment_request, token, "plan.html", context)
