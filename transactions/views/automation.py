"""The collection rules' pages, for managers and administrators: the rules' settings, and the
Automation page (what LumaPay did by itself today and will do tomorrow, in the clinic's time)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_safe

from lumapay.enums import audit_action_label
from lumapay.errors import ApplicationError
from lumapay.phi_access import phi_access_record
from org_profile.access import MANAGERS, membership_required

from ..forms.collection_rules import CollectionRulesForm
from ..models import collection_rules_for
from ..selectors.collection_schedule import automation_done, automation_planned, clinic_day
from ..selectors.ledger import channels_text, organization_zone, rule_label
from ..services.collection_schedule import collection_rules_update


@require_http_methods(["GET", "POST"])
@membership_required(roles=MANAGERS)
def collection_rules(request):
    """Settings → Collection rules. Saving changes the rules only: nothing is sent at save time;
    the scheduler's next pass (within a minute) acts on them."""
    organization = request.organization
    rules = collection_rules_for(organization)
    status = 200
    if request.method == "POST":
        form = CollectionRulesForm(request.POST)
        if form.is_valid():
            before = CollectionRulesForm.initial_for(rules)
            try:
                updated = collection_rules_update(organization=organization, actor=request.user, values=form.values_for_service())
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                changed = before != CollectionRulesForm.initial_for(updated)
                messages.success(
                    request,
                    "Saved the collection rules. Nothing was sent now: LumaPay acts on them from its next check, "
                    "within a minute." if changed else "Nothing changed.",
                )
                return redirect("transactions:collection_rules")
        status = 400
    else:
        form = CollectionRulesForm(initial=CollectionRulesForm.initial_for(rules))
    context = {"form": form, "organization": organization, "rules": rules, "nav": "collection_rules"}
    return render(request, "transactions/automation/rules.html", context, status=status)


@dataclass(frozen=True)
class DoneLine:
    at: datetime.datetime
    title: str
    rule: str
    patient_name: str
    detail: str
    url: str


@require_safe
@membership_required(roles=MANAGERS)
def automation(request):
    """What the automation did today and will do tomorrow, in the clinic's time zone."""
    organization = request.organization
    rules = collection_rules_for(organization)
    today = timezone.now().astimezone(organization_zone(organization)).date()
    today_start, today_end = clinic_day(organization, today)
    tomorrow_start, tomorrow_end = clinic_day(organization, today + datetime.timedelta(days=1))

    done, patient_ids = [], set()
    for event in automation_done(organization=organization, start=today_start, end=today_end)[:500]:
        if event.transaction_id:
            url = reverse("transactions:transaction_detail", args=[event.transaction_id])
        elif event.payment_request_id:
            url = reverse("transactions:payment_request_detail", args=[event.payment_request_id])
        else:
            url = ""
        if event.patient_id:
            patient_ids.add(event.patient_id)
        done.append(
            DoneLine(
                at=event.created_at,
                title=audit_action_label(event.action),
                rule=rule_label(event.changes.get("rule", "")),
                patient_name=event.patient.full_name if event.patient else "",
                detail=channels_text(event.changes) if "channels" in event.changes else event.changes.get("reason", ""),
                url=url,
            )
        )
    planned = automation_planned(organization=organization, start=tomorrow_start, end=tomorrow_end)
    patient_ids |= {action.patient_id for action in planned}
    if patient_ids:
        phi_access_record(request=request, patients=sorted(patient_ids), organization=organization)
    context = {
        "organization": organization,
        "rules": rules,
        "rule_states": [
            ("Copay request before the visit", rules.copay_request_enabled, f"{rules.copay_request_hours_before} hours before"),
            ("Copay held on the card on file", rules.hold_enabled, f"{rules.hold_hours_before} hours before"),
            ("Balance requests and reminders", rules.balance_request_enabled,
             "reminders after " + (", ".join(str(d) for d in rules.balance_reminder_days) or "no") + " days"),
        ],
        "today": today,
        "tomorrow": today + datetime.timedelta(days=1),
        "done": done,
        "planned": [(action, rule_label(action.rule)) for action in planned],
        "nav": "automation",
    }
    return render(request, "transactions/automation/automation.html", context)

