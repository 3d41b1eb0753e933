from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    verbose_name = "Payouts"

    def ready(self) -> None:
        from transactions.gateways.base import BalanceFact, PayoutFact
        from transactions.services.gateway_events import FactKind, fact_kind_register

        # Registers the tasks that services queue by name (``lumapay.task_queue.task_enqueue_on_commit``).
        from . import tasks  # noqa: F401
        from .services import (
            balance_fact_apply,
            balance_fact_organization_id,
            payout_fact_apply,
            payout_fact_organization_id,
        )

        # Payout facts enter through the gateway-event dispatch, as ledger facts do.
        fact_kind_register(PayoutFact, FactKind(apply=payout_fact_apply, organization_id=payout_fact_organization_id))
        fact_kind_register(BalanceFact, FactKind(apply=balance_fact_apply, organization_id=balance_fact_organization_id))

        # The transaction page's "To the bank" panel (payouts/panels.py).
        from transactions.transaction_panels import transaction_panels_register

        from .panels import PAYOUT_PANELS

        transaction_panels_register(PAYOUT_PANELS)
