"""What counts as a problem with a payment: a failure in the ledger that nothing later resolved.

A failure that a later success resolved is history, not a problem. Precisely, reading the ledger
events oldest first (``created_at``, then id):

- a failed charge attempt (``charge_failed``) is resolved by any later successful charge
  (``charge_succeeded``) of the same payment: on the same checkout, or, on the timeline, on a
  later checkout of the same payment request (a patient whose card was declined paid with
  another one). A checkout that was never paid is also resolved when another checkout of its
  payment request was paid (``paid_elsewhere``);
- a failed refund (``refund_failed``) is resolved by a later successful refund of another refund
  row for the same amount (staff refunded that amount again, since a failed refund is final and
  its amount is refundable again), provided that row has no failure of its own; each such success
  resolves one failure, the oldest that matches. A success of the same refund row resolves
  nothing: the ledger does not count a refund that has both a success and a failure (in
  whichever order the processor's reports arrived, see ``transaction_recalculate``).

Unresolved failures are the transaction's problems: the "N problems with this payment" summary,
the red "Error" flags on the timeline, the row's flag on the dashboard and its "has errors" filter
(through ``Transaction.has_unresolved_problems``, which ``transaction_recalculate`` keeps). Resolved
failures stay on the timeline as history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from .enums import TransactionEventKind as Kind

# Ledger kinds that mean the processor failed a payment or a refund.
FAILURE_KINDS = frozenset({Kind.CHARGE_FAILED, Kind.REFUND_FAILED})


class LedgerFact(Protocol):
    kind: str
    amount_cents: int
    refund_id: int | None


Fact = TypeVar("Fact", bound=LedgerFact)


def unresolved_failures(events: Iterable[Fact], *, paid_elsewhere: bool = False) -> list[Fact]:
    """The failure events among ``events`` (oldest first) that no later success resolved, oldest first."""
    events = list(events)
    charges: list[Fact] = []
    refunds: list[Fact] = []
    failed_refund_ids = {
        event.refund_id for event in events if event.kind == Kind.REFUND_FAILED and event.refund_id is not None
    }
    for event in events:
        if event.kind == Kind.CHARGE_FAILED:
            charges.append(event)
        elif event.kind == Kind.CHARGE_SUCCEEDED:
            charges.clear()
        elif event.kind == Kind.REFUND_FAILED:
            refunds.append(event)
        elif event.kind == Kind.REFUND_SUCCEEDED and event.refund_id not in failed_refund_ids:
            for failure in refunds:
                if failure.amount_cents == event.amount_cents:
                    refunds.remove(failure)
                    break
    if paid_elsewhere:
        charges.clear()
    position = {id(event): index for index, event in enumerate(events)}
    return sorted(charges + refunds, key=lambda event: position[id(event)])
