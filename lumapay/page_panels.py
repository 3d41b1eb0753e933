"""Places on one app's pages where apps above it add their parts.

Imports between apps run one way (org_profile ← ehr_sync ← transactions ← payouts, intake_forms …),
so a page cannot ask an app above its own what that app has to show (a patient's payments on the
patient profile, a form on the pay page, the payout that carried a payment). The app that owns the
page declares a ``PageSlots`` with the page's named slots; an app with something to show registers
``Panels`` from its ``AppConfig.ready()``: a partial template per slot, and a function returning
the context those partials read (an empty dict when the member may see nothing of it: the partials
then render nothing). The page renders whatever is registered without knowing who registered it;
with nothing registered it shows its own app's parts only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Panels:
    """One app's parts of a page."""

    # slot -> the partial template rendered there (with the page's context, plus ``context``'s).
    templates: Mapping[str, str]
    # (the page's arguments: the request and its subject, as the page passes them) -> the context
    # the partials read; called once per page view.
    context: Callable[..., dict] | None = None
    # (the subject) -> lines the page's own messages carry (the pay page: its link's e-mail and
    # text), in the language active when called.
    message_lines: Callable[[object], list[str]] | None = None


class PageSlots:
    """The slots of one page, and the apps' panels registered for them, in registration order."""

    def __init__(self, page: str, slots: tuple[str, ...]) -> None:
        self.page = page
        self.slots = slots
        self.registered: list[Panels] = []

    def register(self, panels: Panels) -> None:
        """Add an app's parts (call from ``AppConfig.ready``; a repeat is ignored)."""
        unknown = set(panels.templates) - set(self.slots)
        if unknown:
            raise ValueError(f"No such {self.page} slot: {', '.join(sorted(unknown))}")
        if panels not in self.registered:
            self.registered.append(panels)

    def templates(self) -> dict[str, list[str]]:
        """Each slot's partial templates, in registration order."""
        return {slot: [panels.templates[slot] for panels in self.registered if slot in panels.templates] for slot in self.slots}

    def context(self, *args) -> dict:
        """What the registered apps' partials read; two apps may not supply the same name."""
        context: dict = {}
        for panels in self.registered:
            if panels.context is None:
                continue
            supplied = panels.context(*args)
            clashing = set(supplied) & set(context)
            if clashing:
                raise ValueError(f"{self.page.capitalize()} context supplied twice: {', '.join(sorted(clashing))}")
            context.update(supplied)
        return context

    def message_lines(self, subject) -> list[str]:
        return [line for panels in self.registered if panels.message_lines is not None for line in panels.message_lines(subject)]
