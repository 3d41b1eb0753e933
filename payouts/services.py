"""Payouts as the gateway reports them, and their reconciliation with our ledger.

Facts come in through the gateway-event dispatch (``transactions.services.gateway_events``: this
app registers ``PayoutFact`` and ``BalanceFact`` there from ``PayoutsConfig.ready``) and through the
beat that catches what an event missed (``payouts_reconcile_sweep``). Nothing here moves money.

- ``payout_fact_apply``: one Payout per (gateway, payout id), upserted; a report older than the one
  stored (``as_of``; at the same second, an earlier status) never overwrites it. Every change
  queues the payout's reconciliation.
- ``balance_fact_apply``: the balance per currency, the same way; the next payout is read from the
  gateway after commit (``payouts_balance_refresh``), never inside the event's transaction.
- ``payout_reconcile``: fetch the payout's lines from the gateway (outside any transaction), then
  replace the stored ones at once, each linked to our transaction when it concerns one, with the
  totals and whether they add up to the payout. A failed fetch is recorded on the payout and
  retried (by the task for a transient failure, by the beat otherwise).
- ``payout_lines_link_pending``: a line whose charge or refund is not in our ledger yet (the
  payout's event came before the charge's) is linked by a later pass of the beat.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction as db_transaction
from django.db.models import Q
from django.utils import timezone

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction
from lumapay.models import ActorType
from lumapay.task_queue import task_enqueue_on_commit
from lumapay.tenant_rls import organization_scope
from org_profile.enums import PaymentGateway
from org_profile.models import Organization
from transactions.gateways import gateway_named, payouts_for
from transactions.gateways.base import BalanceFact, GatewayError, GatewayUnavailable, PayoutFact, PayoutLineFact
from transactions.models import Dispute, Refund, Transaction

from .enums import PayoutLineKind, PayoutStatus, Reconciliation
from .models import GatewayBalance, Payout, PayoutLine

logger = logging.getLogger(__name__)

# At the same ``as_of`` second, a later status wins (a payout paid can still come back failed).
STATUS_ORDER = {
    PayoutStatus.PENDING: 0,
    PayoutStatus.IN_TRANSIT: 1,
    PayoutStatus.PAID: 2,
    PayoutStatus.FAILED: 3,
    PayoutStatus.CANCELED: 3,
}
# What a line of each kind is linked by: its own source (a refund or dispute id), else its charge.
_LINKED_KINDS = {
    PayoutLineKind.CHARGE,
    PayoutLineKind.REFUND,
    PayoutLineKind.REFUND_FAILURE,
    PayoutLineKind.DISPUTE,
    PayoutLineKind.DISPUTE_REVERSAL,
    PayoutLineKind.ADJUSTMENT,
}
_RECONCILE_ERROR_LENGTH = Payout._meta.get_field("reconcile_error").max_length


# -- facts -----------------------------------------------------------------------------------------


def payout_fact_organization_id(*, gateway: str, fact: PayoutFact) -> int | None:
    return fact.organization_id if Organization.objects.filter(pk=fact.organization_id).exists() else None


def _is_newer(fact: PayoutFact, payout: Payout) -> bool:
    if fact.as_of != payout.as_of:
        return fact.as_of > payout.as_of
    return STATUS_ORDER.get(fact.status, 0) >= STATUS_ORDER.get(payout.status, 0)


def payout_fact_apply(*, gateway: str, fact: PayoutFact, gateway_event_id: str = "", reconcile: bool = True) -> bool:
    """Store what the gateway says about one payout, unless what is stored is newer. Returns True
    when it changed anything; then (with ``reconcile``) its lines are fetched after commit."""
    if not Organization.objects.filter(pk=fact.organization_id).exists():
        raise LookupError(f"No organization {fact.organization_id} for payout {fact.gateway_payout_id}.")
    fields = {
        "amount_cents": fact.amount_cents,
        "currency": fact.currency.lower(),
        "status": fact.status,
        "method": fact.method,
        "automatic": fact.automatic,
        "created_at": fact.created,
        "arrival_date": fact.arrival_date,
        "bank_name": fact.bank_name,
        "bank_last4": fact.bank_last4,
        "trace_id": fact.trace_id,
        "failure_code": fact.failure_code,
        "failure_message": fact.failure_message,
        "description": fact.description,
        "as_of": fact.as_of,
    }
    with db_transaction.atomic():
        payout = _payout_for_update(gateway, fact.gateway_payout_id)
        if payout is None:
            try:
                with db_transaction.atomic():
                    payout = Payout.objects.create(
                        organization_id=fact.organization_id,
                        gateway=gateway,
                        gateway_payout_id=fact.gateway_payout_id,
                        **fields,
                    )
            except IntegrityError:
                # Another worker stored it between our read and our insert: take its row.
                payout = _payout_for_update(gateway, fact.gateway_payout_id)
                if payout is None:
                    raise
            else:
                logger.debug("payout %s (%s) recorded: %s", payout.gateway_payout_id, gateway, payout.status)
                if reconcile:
                    _reconcile_on_commit(payout.pk)
                return True
        if payout.organization_id != fact.organization_id:
            raise ValueError(f"Payout {fact.gateway_payout_id} belongs to another organization.")
        if not _is_newer(fact, payout):
            return False
        changed = [name for name, value in fields.items() if name != "as_of" and getattr(payout, name) != value]
        if not changed:
            # The same news again (a listing, a replay): only when it was said moves on.
            if fact.as_of > payout.as_of:
                Payout.objects.filter(pk=payout.pk).update(as_of=fact.as_of)
            return False
        changed.append("as_of")
        for name in changed:
            setattr(payout, name, fields[name])
        payout.save(update_fields=[*changed, "updated_at"])
        logger.debug("payout %s (%s) now %s", payout.gateway_payout_id, gateway, payout.status)
        if reconcile:
            _reconcile_on_commit(payout.pk)
        return True


def _payout_for_update(gateway: str, gateway_payout_id: str) -> Payout | None:
    return Payout.objects.select_for_update().filter(gateway=gateway, gateway_payout_id=gateway_payout_id).first()


def _reconcile_on_commit(payout_id: int) -> None:
    # robust: the fact is stored; a lost task is made up by the beat (the payout is not matched).
    task_enqueue_on_commit("payouts.tasks.payout_reconcile", payout_id, robust=True)


def balance_fact_organization_id(*, gateway: str, fact: BalanceFact) -> int | None:
    return fact.organization_id if Organization.objects.filter(pk=fact.organization_id).exists() else None


def balance_fact_apply(*, gateway: str, fact: BalanceFact, gateway_event_id: str = "") -> bool:
    """Store the balance per currency unless a newer report is stored; the next payout is read
    from the gateway after commit (``payouts.tasks.payout_balance_refresh``)."""
    changed = _balance_store(fact)
    task_enqueue_on_commit("payouts.tasks.payout_balance_refresh", fact.organization_id, robust=True)
    return changed


def _balance_store(fact: BalanceFact) -> bool:
    changed = False
    with db_transaction.atomic():
        for amount in fact.amounts:
            currency = amount.currency.lower()
            balance = GatewayBalance.objects.select_for_update().filter(
                organization_id=fact.organization_id, currency=currency
            ).first()
            if balance is None:
                try:
                    with db_transaction.atomic():
                        GatewayBalance.objects.create(
                            organization_id=fact.organization_id,
                            currency=currency,
                            available_cents=amount.available_cents,
                            pending_cents=amount.pending_cents,
                            as_of=fact.as_of,
                        )
                    changed = True
                    continue
                except IntegrityError:
                    balance = GatewayBalance.objects.select_for_update().get(
                        organization_id=fact.organization_id, currency=currency
                    )
            if fact.as_of < balance.as_of:
                continue
            balance.available_cents, balance.pending_cents = amount.available_cents, amount.pending_cents
            balance.as_of = fact.as_of
            balance.save(update_fields=["available_cents", "pending_cents", "as_of", "updated_at"])
            changed = True
        # A balance report is whole: a currency it no longer names has nothing left in it.
        gone = GatewayBalance.objects.filter(organization_id=fact.organization_id, as_of__lte=fact.as_of).exclude(
            currency__in=[amount.currency.lower() for amount in fact.amounts]
        )
        changed = bool(
            gone.exclude(available_cents=0, pending_cents=0).update(
                available_cents=0, pending_cents=0, next_payout_date=None, next_payout_estimate_cents=None,
                as_of=fact.as_of, updated_at=timezone.now(),
            )
        ) or changed
    return changed


def payouts_balance_refresh(*, organization: Organization) -> list[GatewayBalance]:
    """Read the balance and the next scheduled payouts from the gateway now and store them."""
    gateway = payouts_for(organization)
    fact = gateway.balance(organization=organization)
    upcoming = {next_payout.currency.lower(): next_payout for next_payout in gateway.next_payouts(organization=organization)}
    _balance_store(fact)
    balances = list(GatewayBalance.objects.filter(organization=organization))
    for balance in balances:
        next_payout = upcoming.get(balance.currency)
        balance.next_payout_date = next_payout.payout_date if next_payout else None
        balance.next_payout_estimate_cents = next_payout.estimated_cents if next_payout else None
        balance.save(update_fields=["next_payout_date", "next_payout_estimate_cents", "updated_at"])
    return balances


# -- reconciliation --------------------------------------------------------------------------------


def payout_reconcile(*, payout_id: int) -> Payout | None:
    """Fetch the payout's lines from its gateway and store them in place of the old ones, linked
    to our transactions; record whether they add up to the payout. A fetch that fails is recorded
    in ``reconcile_error``; a transient failure (``GatewayUnavailable``) is raised again for the
    task to retry, any other waits for the beat."""
    payout = Payout.objects.select_related("organization").filter(pk=payout_id).first()
    if payout is None:
        return None
    # The gateway that made the payout (the clinic may have moved to another since).
    gateway = gateway_named(payout.gateway)
    if not payout.automatic and not gateway.itemizes_manual_payouts:
        if payout.reconciliation != Reconciliation.NOT_ITEMIZED:
            Payout.objects.filter(pk=payout.pk).update(
                reconciliation=Reconciliation.NOT_ITEMIZED, reconcile_error="", updated_at=timezone.now()
            )
        return payout
    try:
        facts = list(gateway.payout_lines(
            organization=payout.organization, gateway_payout_id=payout.gateway_payout_id
        ))  # fmt: skip
    except GatewayError as error:
        Payout.objects.filter(pk=payout.pk).update(
            reconcile_error=f"{type(error).__name__}: {error}"[:_RECONCILE_ERROR_LENGTH], updated_at=timezone.now()
        )
        logger.warning("payout %s: its lines could not be fetched (%s)", payout.gateway_payout_id, type(error).__name__)
        if isinstance(error, GatewayUnavailable):
            raise
        return payout
    return _lines_store(payout_id=payout.pk, facts=facts)


def _lines_store(*, payout_id: int, facts: list[PayoutLineFact]) -> Payout:
    with db_transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("organization").get(pk=payout_id)
        links = _links_for(payout.organization_id, facts)
        PayoutLine.objects.filter(payout=payout).delete()
        PayoutLine.objects.bulk_create(
            [
                PayoutLine(
                    organization_id=payout.organization_id,
                    payout=payout,
                    gateway_line_id=fact.gateway_line_id,
                    kind=fact.kind if fact.kind in PayoutLineKind.values else PayoutLineKind.OTHER,
                    amount_cents=fact.amount_cents,
                    fee_cents=fact.fee_cents,
                    net_cents=fact.net_cents,
                    currency=fact.currency.lower(),
                    created_at=fact.created,
                    available_on=fact.available_on,
                    source_id=fact.source_id,
                    charge_id=fact.charge_id,
                    transaction_id=links.get(fact.gateway_line_id),
                )
                for fact in facts
            ],
            batch_size=1000,
        )
        before = (payout.reconciliation, payout.difference_cents)
        payout.lines_count = len(facts)
        payout.lines_net_cents = sum(fact.net_cents for fact in facts)
        payout.reconciliation = (
            Reconciliation.MATCHED if payout.lines_net_cents == payout.amount_cents else Reconciliation.DIFFERENCE
        )
        payout.reconciled_at = timezone.now()
        payout.reconcile_error = ""
        payout.save(
            update_fields=[
                "lines_count", "lines_net_cents", "reconciliation", "reconciled_at", "reconcile_error", "updated_at"
            ]
        )  # fmt: skip
        if before != (payout.reconciliation, payout.difference_cents):
            audit_event_record(
                organization=payout.organization,
                action=AuditAction.PAYOUT_RECONCILED,
                actor_type=ActorType.SYSTEM,
                changes={
                    "payout": payout.gateway_payout_id,
                    "reconciliation": [before[0], payout.reconciliation],
                    "difference_cents": payout.difference_cents,
                    "lines": payout.lines_count,
                },
            )
        if payout.reconciliation == Reconciliation.DIFFERENCE:
            logger.warning(
                "payout %s does not reconcile: %s cents apart over %s lines",
                payout.gateway_payout_id, payout.difference_cents, payout.lines_count,
            )  # fmt: skip
    return payout


def _links_for(organization_id: int, lines) -> dict[str, int]:
    """Our transaction for each line that concerns one, by the line's gateway id: a charge by its
    charge id; a refund by the refund (else its charge); a dispute by the dispute (else its
    charge); an adjustment by its charge. ``lines`` are facts or stored lines (same attributes)."""
    lines = [line for line in lines if line.kind in _LINKED_KINDS and (line.source_id or line.charge_id)]
    if not lines:
        return {}
    charge_ids = {line.charge_id or line.source_id for line in lines if line.kind == PayoutLineKind.CHARGE}
    charge_ids |= {line.charge_id for line in lines if line.charge_id}
    source_ids = {line.source_id for line in lines if line.source_id}
    by_charge = dict(
        Transaction.objects.filter(organization_id=organization_id, gateway_charge_id__in=charge_ids)
        .exclude(gateway_charge_id="")
        .values_list("gateway_charge_id", "id")
    )
    by_refund = dict(
        Refund.objects.filter(organization_id=organization_id, gateway_refund_id__in=source_ids).values_list(
            "gateway_refund_id", "transaction_id"
        )
    )
    by_dispute = dict(
        Dispute.objects.filter(organization_id=organization_id, gateway_dispute_id__in=source_ids).values_list(
            "gateway_dispute_id", "transaction_id"
        )
    )
    links = {}
    for line in lines:
        if line.kind == PayoutLineKind.CHARGE:
            found = by_charge.get(line.charge_id or line.source_id)
        elif line.kind in (PayoutLineKind.REFUND, PayoutLineKind.REFUND_FAILURE):
            found = by_refund.get(line.source_id) or by_charge.get(line.charge_id)
        elif line.kind in (PayoutLineKind.DISPUTE, PayoutLineKind.DISPUTE_REVERSAL):
            found = by_dispute.get(line.source_id) or by_charge.get(line.charge_id)
        else:
            found = by_charge.get(line.charge_id)
        if found is not None:
            links[line.gateway_line_id] = found
    return links


LINK_BATCH_SIZE = 2000


def payout_lines_link_pending(*, organization_id: int, since: datetime | None = None) -> int:
    """Link the lines stored unlinked whose transaction is now in our ledger (the payout's event
    came before its charges'). Looks at the payouts created since ``since`` (the sweep's window).
    Returns how many lines were linked."""
    pending = PayoutLine.objects.filter(
        organization_id=organization_id, transaction__isnull=True, kind__in=_LINKED_KINDS
    ).exclude(source_id="", charge_id="")
    if since is not None:
        pending = pending.filter(payout__created_at__gte=since)
    linked, last_id = 0, 0
    # Every pending line, a batch at a time in id order: lines that will never link (a charge made
    # outside LumaPay) must not hide the ones behind them.
    while batch := list(
        pending.filter(id__gt=last_id).order_by("id").only("id", "gateway_line_id", "kind", "source_id", "charge_id")[
            :LINK_BATCH_SIZE
        ]
    ):
        last_id = batch[-1].id
        links = _links_for(organization_id, batch)
        for line in batch:
            transaction_id = links.get(line.gateway_line_id)
            if transaction_id is not None:
                linked += PayoutLine.objects.filter(pk=line.pk, transaction__isnull=True).update(transaction_id=transaction_id)
    if linked:
        logger.info("organization %s: %s payout line(s) linked to their transactions", organization_id, linked)
    return linked


# -- the beat: what events missed --------------------------------------------------------------------


def payouts_organizations() -> list[Organization]:
    """The clinics whose gateway pays them out now: every Sandbox clinic, every Stripe clinic with a
    connected account it has not disconnected LumaPay from (Stripe would refuse every read)."""
    return list(
        Organization.objects.filter(
            Q(payment_gateway=PaymentGateway.SANDBOX)
            | Q(payment_gateway=PaymentGateway.STRIPE, stripe_account_id__isnull=False, stripe_disconnected_at__isnull=True)
        ).order_by("pk")
    )


def payouts_reconcile_organization(*, organization: Organization, now: datetime | None = None) -> dict:
    """One clinic's catch-up, in its own tenant scope: list its payouts created in the last
    ``PAYOUTS_RECONCILE_LOOKBACK_DAYS`` and apply them (what an event missed), queue the
    reconciliation of every payout whose lines are not fetched or do not add up, link lines whose
    transaction has arrived since, and refresh the balance and next payout."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.PAYOUTS_RECONCILE_LOOKBACK_DAYS)
    gateway = payouts_for(organization)
    applied = []
    for fact in gateway.payouts_list(organization=organization, created_after=since):
        if fact.organization_id != organization.pk:
            raise ValueError(f"The gateway listed payout {fact.gateway_payout_id} of another organization.")
        if payout_fact_apply(gateway=gateway.name, fact=fact):
            applied.append(fact.gateway_payout_id)  # its reconciliation is queued already
    # Within the look-back only: a payout whose lines stay short of it (or cannot be fetched) is
    # asked for again for that long, then left to an operator (admin: "Fetch the lines again").
    due = list(
        Payout.objects.filter(organization=organization, created_at__gte=since)
        .exclude(reconciliation__in=[Reconciliation.MATCHED, Reconciliation.NOT_ITEMIZED])
        .exclude(gateway=gateway.name, gateway_payout_id__in=applied)
        .order_by("updated_at")
        .values_list("pk", flat=True)[: settings.PAYOUTS_RECONCILE_BATCH]
    )
    for payout_id in due:
        _reconcile_on_commit(payout_id)
    linked = payout_lines_link_pending(organization_id=organization.pk, since=since)
    payouts_balance_refresh(organization=organization)
    return {"applied": len(applied), "reconcile_queued": len(due), "linked": linked}


def payouts_reconcile_sweep(*, now: datetime | None = None) -> dict:
    """``payouts_reconcile_organization`` for every clinic that is paid out, each in its own tenant
    scope (beat). A clinic whose gateway fails is logged and retried on the next run; the others
    go on."""
    now = now or timezone.now()
    totals = {"organizations": 0, "applied": 0, "reconcile_queued": 0, "linked": 0, "failed": 0}
    for organization in payouts_organizations():
        try:
            with organization_scope(organization.pk):
                result = payouts_reconcile_organization(organization=organization, now=now)
        except GatewayError as error:
            totals["failed"] += 1
            logger.warning("payouts of organization %s not reconciled: %s", organization.pk, type(error).__name__)
            continue
        except Exception:  # noqa: BLE001 - one clinic's fault must not stop every other's reconciliation
            totals["failed"] += 1
            logger.exception("payouts of organization %s not reconciled", organization.pk)
            continue
        totals["organizations"] += 1
        for key, value in result.items():
            totals[key] += value
    return totals
