"""Celery tasks: each takes ids, loads nothing itself and calls one service that checks the
current state first, so a second delivery of the same task is harmless.

Tasks are entry points, like views: they import services, and services never import them (a
service queues a task by its name, through ``lumapay.task_queue.task_enqueue_on_commit``).

Every task starts with no organization in the database (``lumapay.tenant_rls.TenantTask``): one
given a row's id runs in that row's organization (``organization_scope_of``); the beat sweeps and
gateway events, which span clinics, say so with ``all_organizations``.
"""

from celery import shared_task
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from lumapay.tenant_rls import all_organizations, organization_scope, organization_scope_of
from org_profile.models import OrganizationPerson

from .gateways.base import GatewayUnavailable
from .enums import EhrPostingStatus
from .models import EhrPosting, PaymentPlanInstalment, PaymentRequestDelivery, Transaction, TransactionExport
from .sandbox import payouts as sandbox_payouts, processor as sandbox_processor
from .services import (
    collection_schedule,
    ehr_postings,
    exports,
    gateway_events,
    holds,
    patient_messages,
    payment_plans,
    payment_requests,
    saved_cards,
    stripe_connect,
    stripe_events,
    stripe_profile,
)

@shared_task(bind=True, acks_late=True, max_retries=20)
def patient_message_send(self, delivery_id: int, sent_as: str = "", claimed_attempt: int = 0) -> None:
    """Send one e-mail or SMS the patient is owed (an outbox row), retrying with backoff while it
    is still owed; the row counts the attempts and gives up, so ``max_retries`` only bounds the
    retries of a database that stays away (the beat sweep takes over from there)."""
    try:
        with organization_scope_of(PaymentRequestDelivery, delivery_id):
            patient_messages.delivery_send(delivery_id=delivery_id, sent_as=sent_as, claimed_attempt=claimed_attempt)
    except patient_messages.DeliveryRetry as retry:
        raise self.retry(
            countdown=retry.countdown_seconds + 1, kwargs={"delivery_id": delivery_id, **retry.retry_kwargs}, exc=retry
        )
    except DatabaseError as error:
        # The database is away: try again as we were (a message sent and not marked stays so).
        countdown = patient_messages.backoff_seconds(self.request.retries + 1)
        kwargs = {"delivery_id": delivery_id, "sent_as": sent_as, "claimed_attempt": claimed_attempt}
        raise self.retry(countdown=countdown, kwargs=kwargs, exc=error)


@shared_task
def patient_messages_resend_stuck() -> int:
    """Queue again the owed messages whose task was lost or whose sender died (beat)."""
    with all_organizations():
        return patient_messages.deliveries_resend_stuck()


@shared_task(acks_late=True)
def payment_request_deliver(delivery_id: int) -> None:
    """The link's delivery task of earlier releases (tasks queued before this one was deployed)."""
    patient_message_send.delay(delivery_id)


@shared_task
def payment_requests_expire_overdue() -> int:
    with all_organizations():
        return payment_requests.payment_requests_expire_overdue()


@shared_task(
    acks_late=True,
    autoretry_for=(GatewayUnavailable, OperationalError),
    retry_backoff=5,
    retry_backoff_max=gateway_events.RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
    max_retries=8,
)
def gateway_event_process(gateway_event_id: int) -> None:
    with all_organizations():
        gateway_events.gateway_event_process(gateway_event_id=gateway_event_id)


@shared_task
def gateway_events_requeue_stalled() -> int:
    """Queue again the gateway events stored but not processed in time (beat, every minute)."""
    with all_organizations():
        return gateway_events.gateway_events_requeue_stalled()


@shared_task(acks_late=True)
def receipt_email_send(transaction_id: int) -> None:
    """The receipt task of earlier releases (tasks queued before this one was deployed): owes the
    receipt through the outbox if it is not owed and was never sent."""
    with organization_scope_of(Transaction, transaction_id):
        patient_messages.receipt_email_send(transaction_id=transaction_id)


@shared_task
def stripe_events_recover() -> int:
    """List recent Stripe events and store any the webhook never received (beat, every 10 minutes)."""
    with all_organizations():
        return stripe_events.stripe_events_recover()


@shared_task(acks_late=True)
def transaction_export_build(export_id: int) -> None:
    """Write a large Excel export of the dashboard's filtered transactions."""
    with organization_scope_of(TransactionExport, export_id):
        exports.transaction_export_build(export_id=export_id)


@shared_task
def transaction_exports_expire() -> int:
    """Delete the files of Excel exports past their expiry (beat, hourly)."""
    with all_organizations():
        return exports.transaction_exports_expire()


@shared_task
def authorizations_release_for_missed_visits() -> int:
    """Let go of copays held for appointments the EHR now reports cancelled or missed (beat, every
    15 minutes)."""
    with all_organizations():
        return saved_cards.authorizations_release_for_missed_visits()


@shared_task(bind=True, acks_late=True, max_retries=None)
def ehr_posting_send(self, posting_id: int) -> None:
    """Post one payment, refund or reversal to the EHR; while it is not posted and the row says
    when to try again, retry then. The row counts the attempts and stops; the beat sweep
    (``ehr_postings_sweep``) takes over from a lost task or a dead worker."""
    try:
        with organization_scope_of(EhrPosting, posting_id):
            posting = ehr_postings.ehr_posting_send(posting_id=posting_id)
    except DatabaseError as error:
        raise self.retry(countdown=ehr_postings.backoff_seconds(self.request.retries + 1), exc=error)
    if posting is None or posting.status == EhrPostingStatus.POSTED or posting.next_attempt_at is None:
        return
    if self.request.is_eager:
        # Run in-process (tests, a broker of memory://): a retry would run again at once, not when
        # due; the beat sweep sends it then.
        return
    if posting.claimed_until is None:
        countdown = max(1, int((posting.next_attempt_at - timezone.now()).total_seconds()) + 1)
        raise self.retry(countdown=countdown)


@shared_task
def ehr_postings_sweep() -> int:
    """Owe the postings of money events that have none, and queue again the postings whose task was
    lost or whose worker died (beat)."""
    with all_organizations():
        return ehr_postings.ehr_postings_sweep()


@shared_task
def collection_schedule_run() -> dict:
    """One pass of the collection rules across clinics (beat, every minute): copay requests before
    visits, balance requests and reminders. A pass that overlaps the next one is harmless (locked
    rows are skipped, the database keeps one request per appointment)."""
    with all_organizations():
        return collection_schedule.collection_schedule_run().as_dict()


@shared_task
def holds_place_before_visits() -> int:
    """Hold upcoming visits' copays on the patients' cards on file, by each clinic's hold rule (beat)."""
    with all_organizations():
        return holds.holds_place_before_visits()


@shared_task
def holds_capture_at_check_in() -> int:
    """Capture the copays held for patients the EHR says arrived (beat, every minute)."""
    with all_organizations():
        return holds.holds_capture_at_check_in()


@shared_task
def holds_renew() -> int:
    """Renew holds about to lapse whose visit is still ahead (beat)."""
    with all_organizations():
        return holds.holds_renew()


@shared_task
def sandbox_holds_lapse() -> int:
    """The Sandbox processor lets holds older than 7 days lapse, as a card network does (beat); its
    events tell LumaPay's ledger."""
    with all_organizations():
        return sandbox_processor.holds_lapse()


@shared_task
def sandbox_payouts_advance() -> int:
    """The Sandbox processor pays its merchants out (beat): today's payouts made, each moved along
    its schedule (pending, in transit, paid or returned by the bank); its events tell LumaPay."""
    with all_organizations():
        return sandbox_payouts.payouts_advance_all()


@shared_task
def payment_plan_instalments_charge_due() -> int:
    """Charge the payment plans' instalments due, and the declined ones due for a retry (beat)."""
    with all_organizations():
        return payment_plans.payment_plan_instalments_charge_due()


@shared_task(acks_late=True)
def payment_plan_instalment_charge(instalment_id: int) -> None:
    """Charge one instalment now if it is due (a plan whose first instalment is due today)."""
    with organization_scope_of(PaymentPlanInstalment, instalment_id):
        payment_plans.payment_plan_instalment_charge(instalment_id=instalment_id)


# -- the organization's profile, pushed to its Stripe account (queued by org_profile.profile) ------


@shared_task(
    acks_late=True, autoretry_for=(GatewayUnavailable, OperationalError), retry_backoff=5, retry_jitter=True, max_retries=8
)
def stripe_account_profile_push(organization_id: int, fields: list[str], audit_event_id: int) -> bool:
    with organization_scope(organization_id):
        return stripe_profile.stripe_account_profile_push(
            organization_id=organization_id, fields=fields, audit_event_id=audit_event_id
        )


@shared_task(
    acks_late=True, autoretry_for=(GatewayUnavailable, OperationalError), retry_backoff=5, retry_jitter=True, max_retries=8
)
def stripe_person_push(person_id: int, fields: list[str], audit_event_id: int) -> bool:
    with organization_scope_of(OrganizationPerson, person_id):
        return stripe_profile.stripe_person_push(person_id=person_id, fields=fields, audit_event_id=audit_event_id)


@shared_task(
    acks_late=True, autoretry_for=(GatewayUnavailable, OperationalError), retry_backoff=5, retry_jitter=True, max_retries=8
)
def stripe_person_remove(organization_id: int, stripe_person_id: str, audit_event_id: int) -> bool:
    with organization_scope(organization_id):
        return stripe_profile.stripe_person_remove(
            organization_id=organization_id, stripe_person_id=stripe_person_id, audit_event_id=audit_event_id
        )


@shared_task(acks_late=True)
def stripe_account_disconnected_notify(organization_id: int) -> int:
    """E-mail the administrators that the clinic's Stripe account was disconnected."""
    with organization_scope(organization_id):
        return stripe_connect.stripe_account_disconnected_notify(organization_id=organization_id)
