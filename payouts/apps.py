from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    verbose_name = "Payouts"

    def ready(self) -> None:
        # -- payouts pages: the transaction page's "To the bank" panel (payouts/panels.py) --
        from transactions.transaction_panels import transaction_panels_register

        from .panels import PAYOUT_PANELS

        transaction_panels_register(PAYOUT_PANELS)
        # -- end payouts pages --
