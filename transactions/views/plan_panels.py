"""The payment plans panel of the patient profile: each plan's schedule (instalments, their
attempts and transactions) and its history, with "Set up a payment plan" and "Cancel plan" for
members whose role may use cards on file. Registered with ``ehr_sync.patient_panels`` from
``TransactionsConfig.ready``, beside the payment panels."""

from __future__ import annotations

from django.http import HttpRequest

from ehr_sync.models import Patient
from ehr_sync.patient_panels import PatientPanels
from lumapay.enums import AuditAction, audit_action_label
from lumapay.models import AuditEvent

from ..enums import CollectionRule
from ..selectors.ledger import actor_label
from ..selectors.payment_plans import payment_plans_of_patient
from ..selectors.saved_cards import card_on_file_offered

_PLAN_ACTIONS = [action for action in AuditAction.values if action.startswith("payment_plan.")]


def patient_plans_context(request: HttpRequest, patient: Patient) -> dict:
    organization = request.organization
    offered = card_on_file_offered(organization)
    plans = list(payment_plans_of_patient(membership=request.membership, patient=patient))
    history: dict[int, list[dict]] = {}
    if plans:
        events = (
            AuditEvent.objects.filter(
                organization=organization, patient=patient, action__in=_PLAN_ACTIONS, changes__plan__in=[plan.pk for plan in plans]
            )
            .select_related("actor_user")
            .order_by("created_at", "pk")
        )
        for event in events:
            changes = event.changes if isinstance(event.changes, dict) else {}
            rule = changes.get("rule")
            history.setdefault(changes.get("plan"), []).append(
                {
                    "at": event.created_at,
                    "what": audit_action_label(event.action),
                    "who": actor_label(event.actor_type, event.actor_user, event.ip_address),
                    "rule": CollectionRule(rule).label if rule in CollectionRule.values else "",
                    "detail": changes.get("failure_message") or "",
                    "transaction_id": event.transaction_id,
                }
            )
    for plan in plans:
        plan.history = history.get(plan.pk, [])
    return {
        "payment_plans": plans,
        "may_set_up_plans": offered and organization.role_may_use_saved_cards(request.membership.role),
    }


PLAN_PANELS = PatientPanels(
    templates={"after_appointments": "transactions/patient_panels/_payment_plans.html"},
    context=patient_plans_context,
)
