"""Staff pages for payment plans: set one up on a card on file (fill in, review the schedule and
the consent text with the patient, confirm) and cancel one. Only members whose role may use cards
on file (``Organization.saved_card_roles``); each view parses the form and calls one service."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from ehr_sync.selectors import patient_get, patient_balance
from lumapay.errors import ApplicationError
from lumapay.money import format_cents
from lumapay.phi_access import phi_access_record
from org_profile.access import found_or_404, membership_required

from ..forms.payment_plans import PaymentPlanForm
from ..selectors.payment_plans import payment_plan_get
from ..selectors.saved_cards import card_on_file_offered, saved_cards_active
from ..services.payment_plans import (
    clinic_today,
    payment_plan_cancel,
    payment_plan_consent_text,
    payment_plan_create,
    payment_plan_schedule,
)
from .saved_cards import _require_card_role


@require_http_methods(["GET", "HEAD", "POST"])
@membership_required()
def payment_plan_new(request, patient_pk):
    _require_card_role(request)
    organization = request.organization
    if not card_on_file_offered(organization):
        raise Http404("This clinic does not keep cards on file.")
    patient = found_or_404(patient_get(organization=organization, patient_id=patient_pk), "No such patient.")
    phi_access_record(request=request, patients=[patient])
    cards = saved_cards_active(organization=organization, patient=patient)
    balance = patient_balance(patient=patient)
    initial = {"first_due_date": clinic_today(organization)}
    if balance is not None and balance.amount_due_cents > 0:
        initial["amount"] = f"{balance.amount_due_cents / 100:.2f}"
    form = PaymentPlanForm(request.POST or None, membership=request.membership, cards=cards, initial=initial)
    context = {"nav": "hub", "patient": patient, "form": form, "has_cards": cards.exists(), "balance": balance}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            schedule = payment_plan_schedule(
                total_cents=data["amount"], instalment_count=data["instalment_count"], first_due_date=data["first_due_date"]
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            return render(request, "transactions/payment_plans/payment_plan_new.html", context)
        consent_text = payment_plan_consent_text(
            organization=organization, saved_card=data["saved_card"], billing_item=data["billing_item"].strip(), schedule=schedule
        )
        if request.POST.get("step") == "confirm":
            try:
                plan = payment_plan_create(
                    organization=organization,
                    actor=request.user,
                    saved_card=data["saved_card"],
                    location=data["location"],
                    total_cents=data["amount"],
                    instalment_count=data["instalment_count"],
                    first_due_date=data["first_due_date"],
                    billing_item=data["billing_item"],
                    consent_given=request.POST.get("consent") == "yes",
                    consent_text=request.POST.get("consent_text", ""),
                    charge_due_now=True,
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request,
                    f"Payment plan set up: {plan.instalment_count} instalments, "
                    f"{format_cents(plan.total_cents, plan.currency)} in all, on {plan.saved_card}.",
                )
                return redirect("patients:profile", pk=patient.pk)
        context.update({"schedule": schedule, "consent_text": consent_text, "review": True})
    return render(request, "transactions/payment_plans/payment_plan_new.html", context)


@require_POST
@membership_required()
def payment_plan_cancel_view(request, pk):
    _require_card_role(request)
    plan = found_or_404(payment_plan_get(membership=request.membership, pk=pk))
    try:
        payment_plan_cancel(organization=request.organization, actor=request.user, plan=plan)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Payment plan #{plan.pk} cancelled: no more instalments will be charged.")
    return redirect("patients:profile", pk=plan.patient_id)
