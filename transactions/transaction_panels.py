"""Places on a transaction's page where apps above ``transactions`` add their parts.

Imports between apps run one way (… ← transactions ← payouts), so transactions cannot ask which
payout carried a payment's money. An app that has something to show about a transaction registers
a ``TransactionPanels`` from its ``AppConfig.ready()``: partial templates for named slots, and a
function that returns the context those partials read (an empty dict when the member may see
nothing of it: the partials then render nothing). The transaction page renders whatever is
registered without knowing who registered it. Modelled on ``ehr_sync.patient_panels``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.http import HttpRequest

# Where partials may go, in page order.
SLOTS = (
    "after_money",  # sections below the payment, patient and money cards
)


@dataclass(frozen=True)
class TransactionPanels:
    """One app's parts of the transaction page."""

    templates: Mapping[str, str]
    # (request, transaction) -> the context the partials read; called once per page view.
    context: Callable[[HttpRequest, object], dict] | None = None


_registered: list[TransactionPanels] = []


def transaction_panels_register(panels: TransactionPanels) -> None:
    """Add an app's parts to the transaction page (call from ``AppConfig.ready``; a repeat is ignored)."""
    unknown = set(panels.templates) - set(SLOTS)
    if unknown:
        raise ValueError(f"No such transaction page slot: {', '.join(sorted(unknown))}")
    if panels not in _registered:
        _registered.append(panels)


def transaction_panel_templates() -> dict[str, list[str]]:
    """Each slot's partial templates, in registration order."""
    return {slot: [panels.templates[slot] for panels in _registered if slot in panels.templates] for slot in SLOTS}


def transaction_panel_context(request: HttpRequest, transaction) -> dict:
    """What the registered apps' partials read; two apps may not supply the same name."""
    context: dict = {}
    for panels in _registered:
        if panels.context is None:
            continue
        supplied = panels.context(request, transaction)
        clashing = set(supplied) & set(context)
        if clashing:
            raise ValueError(f"Transaction page context supplied twice: {', '.join(sorted(clashing))}")
        context.update(supplied)
    return context
