"""The slots of the patient's pay page, where apps above ``transactions`` add their parts (the form
that goes with a copay request), which transactions cannot ask for (see ``lumapay.page_panels``).
The panels' ``context`` is called with the payment request (an empty dict: the partials render
nothing); their ``message_lines`` add lines to the e-mail and text message carrying the request's
link.
"""

from __future__ import annotations

from lumapay.page_panels import PageSlots, Panels

PAY_PAGE = PageSlots(
    "pay page",
    (
        "before_pay",  # above the amount and the "Pay" button, and on the confirmation
    ),
)
PayPagePanels = Panels


def pay_page_panels_register(panels: Panels) -> None:
    PAY_PAGE.register(panels)


def pay_page_panel_templates() -> dict[str, list[str]]:
    return PAY_PAGE.templates()


def pay_page_panel_context(payment_request) -> dict:
    return PAY_PAGE.context(payment_request)


def pay_page_message_lines(payment_request) -> list[str]:
    return PAY_PAGE.message_lines(payment_request)
