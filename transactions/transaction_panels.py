"""The slots of a transaction's page, where apps above ``transactions`` add their parts (the payout
that carried a payment's money, the form whose payment question it paid), which transactions cannot
ask for (see ``lumapay.page_panels``). The panels' ``context`` is called with (request,
transaction).
"""

from __future__ import annotations

from django.http import HttpRequest

from lumapay.page_panels import PageSlots, Panels

# Where partials may go, in page order.
TRANSACTION_PAGE = PageSlots(
    "transaction page",
    (
        "after_money",  # sections below the payment, patient and money cards
    ),
)
TransactionPanels = Panels


def transaction_panels_register(panels: Panels) -> None:
    TRANSACTION_PAGE.register(panels)


def transaction_panel_templates() -> dict[str, list[str]]:
    return TRANSACTION_PAGE.templates()


def transaction_panel_context(request: HttpRequest, transaction) -> dict:
    return TRANSACTION_PAGE.context(request, transaction)
