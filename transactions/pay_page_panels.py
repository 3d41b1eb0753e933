"""Places on the patient's pay page where apps above ``transactions`` add their parts.

Imports between apps run one way (… ← transactions ← intake_forms), so the pay page cannot ask
whether a form goes with its request. An app registers a ``PayPagePanels`` from its
``AppConfig.ready()``: partial templates for named slots and a function of the payment request
that returns the context they read (an empty dict: the partials render nothing), and may add
lines to the e-mail and text message that carry the request's link. Modelled on
``transaction_panels``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

SLOTS = (
    "before_pay",  # above the amount and the "Pay" button, and on the confirmation
)


@dataclass(frozen=True)
class PayPagePanels:
    templates: Mapping[str, str]
    # (payment_request) -> the context the partials read.
    context: Callable[[object], dict] | None = None
    # (payment_request) -> lines for the message with the link, in the language active when called.
    message_lines: Callable[[object], list[str]] | None = None


_registered: list[PayPagePanels] = []


def pay_page_panels_register(panels: PayPagePanels) -> None:
    unknown = set(panels.templates) - set(SLOTS)
    if unknown:
        raise ValueError(f"No such pay page slot: {', '.join(sorted(unknown))}")
    if panels not in _registered:
        _registered.append(panels)


def pay_page_panel_templates() -> dict[str, list[str]]:
    return {slot: [panels.templates[slot] for panels in _registered if slot in panels.templates] for slot in SLOTS}


def pay_page_panel_context(payment_request) -> dict:
    context: dict = {}
    for panels in _registered:
        if panels.context is not None:
            context.update(panels.context(payment_request))
    return context


def pay_page_message_lines(payment_request) -> list[str]:
    return [line for panels in _registered if panels.message_lines is not None for line in panels.message_lines(payment_request)]
