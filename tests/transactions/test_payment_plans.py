"""Payment plans: set-up (roles, consent, amounts, tenant scope), the instalments charged on their
dates by LumaPay itself against localstripe, declines retried and told to the patient, staff
attention after the last retry, cancellation, and the instalments due on a day."""

import datetime
import threading
import zoneinfo

import pytest
from django.db import connections
from django.utils import timezone

from lumapay import sms
from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from transactions.enums import InstalmentStatus, PaymentPlanStatus, TransactionStatus
from transactions.models import PaymentPlan, PaymentPlanAttempt, PaymentPlanInstalment, PaymentRequestDelivery, SavedCard, Transaction
from transactions.selectors.ledger import transaction_timeline
from transactions.selectors.payment_plans import plan_instalments_due_on
from transactions.services.payment_plans import (
    _claim,
    add_months,
    clinic_today,
    payment_plan_cancel,
    payment_plan_consent_text,
    payment_plan_create,
    payment_plan_instalment_charge,
    payment_plan_instalments_charge_due,
    payment_plan_schedule,
)
from transactions.services.saved_cards import card_on_file_consent_text, saved_card_setup_begin, saved_card_setup_complete

from ..factories import LocationFactory, OrganizationFactory, PatientFactory
from ..stripe_support import CARD_DECLINED_AT_CHARGE, CARD_SUCCEEDS
from .pay_support import payment_request_make


def _card(stripe_world, organization, patient, number=CARD_SUCCEEDS) -> SavedCard:
    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=organization, patient=patient),
        consent_given=True,
        consent_text=card_on_file_consent_text(organization),
        ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/",
        cancel_url="http://testserver/pay/t/details/",
    )
    stripe_world.checkout.save_card(start.checkout_id, card_number=number)
    return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))


@pytest.fixture
def card(stripe_world, stripe_organization, patient):
    return _card(stripe_world, stripe_organization, patient)


@pytest.fixture
def declining_card(stripe_world, stripe_organization, patient):
    return _card(stripe_world, stripe_organization, patient, CARD_DECLINED_AT_CHARGE)


def _create(organization, actor, card, location, *, total_cents=12000, count=3, first_due=None, consent=True, text=None):
    first_due = first_due or clinic_today(organization)
    schedule = payment_plan_schedule(total_cents=total_cents, instalment_count=count, first_due_date=first_due)
    shown = payment_plan_consent_text(organization=organization, saved_card=card, billing_item="Balance after insurance", schedule=schedule)
    return payment_plan_create(
        organization=organization, actor=actor, saved_card=card, location=location, total_cents=total_cents,
        instalment_count=count, first_due_date=first_due, billing_item="Balance after insurance",
        consent_given=consent, consent_text=shown if text is None else text,
    )  # fmt: skip


def _intents(stripe_world):
    return stripe_world.http.sent("POST", "/v1/payment_intents")


# -- the schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "amounts"),
    [(10000, 3, [3334, 3333, 3333]), (12000, 3, [4000, 4000, 4000]), (100001, 6, [16671, 16666, 16666, 16666, 16666, 16666]), (5, 2, [3, 2])],
)
def test_the_instalments_add_up_to_the_total_exactly(total, count, amounts):
    schedule = payment_plan_schedule(total_cents=total, instalment_count=count, first_due_date=datetime.date(2027, 1, 31))
    assert [item.amount_cents for item in schedule] == amounts
    assert sum(amounts) == total
    assert [item.number for item in schedule] == list(range(1, count + 1))


def test_monthly_dates_keep_the_day_or_take_the_months_last():
    assert add_months(datetime.date(2027, 1, 31), 1) == datetime.date(2027, 2, 28)
    assert add_months(datetime.date(2028, 1, 31), 1) == datetime.date(2028, 2, 29)
    assert add_months(datetime.date(2027, 11, 15), 3) == datetime.date(2028, 2, 15)


def test_a_plan_cannot_split_into_fewer_cents_than_instalments_or_out_of_range():
    with pytest.raises(ApplicationError):
        payment_plan_schedule(total_cents=2, instalment_count=3, first_due_date=datetime.date(2027, 1, 1))
    with pytest.raises(ApplicationError):
        payment_plan_schedule(total_cents=10000, instalment_count=1, first_due_date=datetime.date(2027, 1, 1))
    with pytest.raises(ApplicationError):
        payment_plan_schedule(total_cents=10000, instalment_count=25, first_due_date=datetime.date(2027, 1, 1))


# -- setting one up ----------------------------------------------------------------------------------


def test_a_manager_sets_up_a_plan_with_the_patients_consent(stripe_world, stripe_organization, manager, location, card):
    first_due = clinic_today(stripe_organization) + datetime.timedelta(days=2)

    plan = _create(stripe_organization, manager, card, location, total_cents=10000, first_due=first_due)

    assert (plan.status, plan.total_cents, plan.instalment_count, plan.consent_source, plan.created_by) == (
        PaymentPlanStatus.ACTIVE, 10000, 3, "staff", manager,
    )
    assert plan.consent_text.startswith(f"I authorize Riverside Family Medicine to charge my card {card} 3 payments")
    instalments = list(plan.instalments.order_by("number"))
    assert [(i.number, i.due_date, i.amount_cents, i.status) for i in instalments] == [
        (1, first_due, 3334, "scheduled"),
        (2, add_months(first_due, 1), 3333, "scheduled"),
        (3, add_months(first_due, 2), 3333, "scheduled"),
    ]
    zone = zoneinfo.ZoneInfo(stripe_organization.timezone)
    # charged on its date in the clinic's time zone, when the quiet hours end (08:00 by default)
    assert timezone.localtime(instalments[0].next_attempt_at, zone).replace(tzinfo=None) == datetime.datetime.combine(first_due, datetime.time(8))
    audit = AuditEvent.objects.get(action="payment_plan.created")
    assert (audit.actor_type, audit.actor_user, audit.patient) == ("staff", manager, card.patient)
    assert audit.changes["consent_text"] == plan.consent_text
    assert audit.changes["instalments"] == [[i.due_date.isoformat(), i.amount_cents] for i in instalments]
    assert _intents(stripe_world) == []  # nothing charged before the first due date


def test_a_role_not_allowed_to_use_cards_cannot_set_up_a_plan(stripe_world, stripe_organization, staff_user, location, card):
    with pytest.raises(ApplicationError, match="only administrators and managers can charge a card on file"):
        _create(stripe_organization, staff_user, card, location)

    assert not PaymentPlan.objects.exists() and not PaymentPlanInstalment.objects.exists()
    refused = AuditEvent.objects.get(action="saved_card.refused")
    assert (refused.actor_user, refused.changes["reason"]) == (staff_user, "role")


@pytest.mark.parametrize("how", ["not_ticked", "other_text"])
def test_without_the_consent_as_shown_nothing_is_set_up(how, stripe_world, stripe_organization, manager, location, card):
    with pytest.raises(ApplicationError, match="must agree to the plan as shown"):
        if how == "not_ticked":
            _create(stripe_organization, manager, card, location, consent=False)
        else:
            _create(stripe_organization, manager, card, location, text="I agree to something else.")
    assert not PaymentPlan.objects.exists()
    assert not AuditEvent.objects.filter(action="payment_plan.created").exists()


def test_another_organizations_card_cannot_carry_a_plan(stripe_world, stripe_organization, manager, location, card):
    other = OrganizationFactory(name="Lakeside Pediatrics")
    with pytest.raises(ApplicationError, match="This card does not exist"):
        _create(other, manager, card, LocationFactory(organization=other))
    with pytest.raises(ApplicationError, match="This card does not exist"):
        _create(stripe_organization, manager, card, LocationFactory(organization=other))
    assert not PaymentPlan.objects.exists()


def test_an_instalment_over_the_organizations_card_limit_is_refused(stripe_world, stripe_organization, manager, location, card):
    stripe_organization.saved_card_charge_max_cents = 3000
    stripe_organization.save(update_fields=["saved_card_charge_max_cents"])
    with pytest.raises(ApplicationError, match="choose more instalments"):
        _create(stripe_organization, manager, card, location, total_cents=12000, count=3)
    assert not PaymentPlan.objects.exists()


def test_the_first_instalment_cannot_be_due_in_the_past(stripe_world, stripe_organization, manager, location, card):
    with pytest.raises(ApplicationError, match="cannot be due before today"):
        _create(stripe_organization, manager, card, location, first_due=clinic_today(stripe_organization) - datetime.timedelta(days=1))


# -- charging ----------------------------------------------------------------------------------------


def test_the_first_instalment_is_charged_on_its_date_and_not_before(stripe_world, stripe_organization, manager, location, card):
    tomorrow = clinic_today(stripe_organization) + datetime.timedelta(days=1)
    plan = _create(stripe_organization, manager, card, location, first_due=tomorrow)
    first = plan.instalments.get(number=1)

    # the day before: nothing is due
    assert payment_plan_instalments_charge_due(now=first.next_attempt_at - datetime.timedelta(minutes=1)) == 0
    assert _intents(stripe_world) == []

    # on its date: charged once, by LumaPay, by the plan rule
    assert payment_plan_instalments_charge_due(now=first.next_attempt_at) == 1
    first.refresh_from_db()
    assert (first.status, first.attempts) == (InstalmentStatus.PAID, 1)
    transaction = first.transaction
    assert (transaction.status, transaction.charged_cents, transaction.automation_rule, transaction.saved_card) == (
        TransactionStatus.SUCCEEDED, 4000, "plan_instalment", card,
    )
    assert transaction.billing_item == "Balance after insurance: instalment 1 of 3"
    (intent,) = _intents(stripe_world)
    assert intent.idempotency_key == f"plan_instalment:{first.pk}:1"
    assert plan.instalments.filter(status="scheduled").count() == 2

    paid = AuditEvent.objects.get(action="payment_plan.instalment_paid")
    assert (paid.actor_type, paid.actor_user, paid.transaction, paid.changes["rule"]) == ("system", None, transaction, "plan_instalment")
    charged = AuditEvent.objects.get(action="saved_card.charge_requested")
    assert (charged.actor_type, charged.changes["rule"]) == ("system", "plan_instalment")
    # the instalment's transaction timeline says LumaPay did it, and by which rule
    timeline = transaction_timeline(transaction=transaction)
    plan_lines = [entry for entry in timeline if entry.title == "Plan instalment paid"]
    assert [(entry.actor, entry.detail) for entry in plan_lines] == [
        ("LumaPay", f"By the rule: Payment plan instalment. Instalment 1 of 3 of payment plan #{plan.pk}.")
    ]

    # run again at the same moment: nothing more
    assert payment_plan_instalments_charge_due(now=first.next_attempt_at) == 0
    assert len(_intents(stripe_world)) == 1


def test_the_last_instalment_paid_completes_the_plan(stripe_world, stripe_organization, manager, location, card):
    plan = _create(stripe_organization, manager, card, location, count=2)
    last = plan.instalments.get(number=2)

    payment_plan_instalments_charge_due(now=last.next_attempt_at)

    plan.refresh_from_db()
    assert plan.status == PaymentPlanStatus.COMPLETED
    assert [t.charged_cents for t in Transaction.objects.order_by("pk")] == [6000, 6000]
    assert AuditEvent.objects.filter(action="payment_plan.completed").count() == 1


def test_a_declined_instalment_is_retried_after_1_3_and_7_days_the_patient_is_told_then_staff_are_asked(
    stripe_world, stripe_organization, manager, location, declining_card, mailoutbox, django_capture_on_commit_callbacks
):
    plan = _create(stripe_organization, manager, declining_card, location)
    first = plan.instalments.get(number=1)
    now = first.next_attempt_at

    waits = []
    for attempt in range(1, 4):
        with django_capture_on_commit_callbacks(execute=True):
            payment_plan_instalment_charge(instalment_id=first.pk, now=now)
        first.refresh_from_db()
        assert (first.status, first.attempts, first.last_error) == (InstalmentStatus.RETRYING, attempt, "Your card was declined.")
        waits.append(round((first.next_attempt_at - now).total_seconds() / 86400))
        # not tried again before its retry date
        assert payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at - datetime.timedelta(seconds=1)) is None
        now = first.next_attempt_at
    assert waits == [1, 3, 7]

    with django_capture_on_commit_callbacks(execute=True):
        payment_plan_instalment_charge(instalment_id=first.pk, now=now)
    first.refresh_from_db()
    plan.refresh_from_db()
    assert (first.status, first.attempts, first.next_attempt_at) == (InstalmentStatus.NEEDS_ATTENTION, 4, None)
    assert plan.status == PaymentPlanStatus.NEEDS_ATTENTION
    # nothing more is charged for this plan until staff act
    assert payment_plan_instalments_charge_due(now=now + datetime.timedelta(days=90)) == 0

    # four attempts, four transactions, four keys
    attempts = list(PaymentPlanAttempt.objects.filter(instalment=first).order_by("number"))
    assert [(a.number, a.outcome, a.transaction.status) for a in attempts] == [(n, "failed", "failed") for n in range(1, 5)]
    assert [i.idempotency_key for i in _intents(stripe_world)] == [f"plan_instalment:{first.pk}:{n}" for n in range(1, 5)]
    assert list(AuditEvent.objects.filter(action__startswith="payment_plan.", transaction__isnull=False).order_by("pk").values_list("action", "actor_type")) == [
        ("payment_plan.instalment_failed", "system"), ("payment_plan.instalment_failed", "system"),
        ("payment_plan.instalment_failed", "system"), ("payment_plan.needs_attention", "system"),
    ]

    # the patient was told each time, by e-mail and text, with one link to pay it or change the card
    request = first.payment_request
    assert (request.amount_cents, request.automation_rule, request.status) == (4000, "plan_instalment", "open")
    notices = PaymentRequestDelivery.objects.filter(purpose="plan_charge_failed").order_by("pk")
    assert [(d.channel, d.status) for d in notices] == [("email", "sent"), ("sms", "sent")] * 4
    assert len(mailoutbox) == 4
    assert mailoutbox[0].subject == "Riverside Family Medicine: your plan payment of $40.00 did not go through"
    assert "We will try the card again on" in mailoutbox[0].body
    assert "To pay this amount now, or to put a new card on file for your plan, open this link:" in mailoutbox[0].body
    assert "We will not try the card again. The clinic will contact you" in mailoutbox[3].body
    assert "http://testserver/pay/" in sms.outbox[0].body and "did not go through" in sms.outbox[0].body


def test_a_retry_that_succeeds_pays_the_instalment_and_closes_its_link(
    stripe_world, stripe_organization, manager, location, declining_card, card, django_capture_on_commit_callbacks
):
    plan = _create(stripe_organization, manager, declining_card, location)
    first = plan.instalments.get(number=1)
    payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)
    first.refresh_from_db()
    # staff (or the patient, through the link) moved the plan to a card that works
    PaymentPlan.objects.filter(pk=plan.pk).update(saved_card=card)

    payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)

    first.refresh_from_db()
    assert (first.status, first.attempts, first.transaction.status) == ("paid", 2, "succeeded")
    first.payment_request.refresh_from_db()
    assert first.payment_request.status == "cancelled"


def test_an_opted_out_patient_gets_the_decline_notice_by_e_mail_only(
    stripe_world, stripe_organization, manager, location, declining_card, mailoutbox, django_capture_on_commit_callbacks
):
    from lumapay.models import SmsOptOut

    SmsOptOut.objects.create(phone_number=declining_card.patient.mobile_phone, keyword="STOP", opted_out_at=timezone.now())
    plan = _create(stripe_organization, manager, declining_card, location)
    first = plan.instalments.get(number=1)

    with django_capture_on_commit_callbacks(execute=True):
        payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)

    notices = {d.channel: d for d in PaymentRequestDelivery.objects.filter(purpose="plan_charge_failed")}
    assert notices["email"].status == "sent" and len(mailoutbox) == 1
    assert notices["sms"].status == "failed" and sms.outbox == []
    assert notices["sms"].error_message.startswith("Not sent: the patient replied STOP")


def test_cancelling_a_plan_stops_its_charges(stripe_world, stripe_organization, manager, location, card):
    plan = _create(stripe_organization, manager, card, location)
    first = plan.instalments.get(number=1)
    payment_plan_instalments_charge_due(now=first.next_attempt_at)

    cancelled = payment_plan_cancel(organization=stripe_organization, actor=manager, plan=plan)

    assert (cancelled.status, cancelled.cancelled_by) == (PaymentPlanStatus.CANCELLED, manager)
    assert list(plan.instalments.order_by("number").values_list("status", flat=True)) == ["paid", "cancelled", "cancelled"]
    assert payment_plan_instalments_charge_due(now=timezone.now() + datetime.timedelta(days=400)) == 0
    assert len(_intents(stripe_world)) == 1
    audit = AuditEvent.objects.get(action="payment_plan.cancelled")
    assert (audit.actor_user, audit.changes["instalments_cancelled"]) == (manager, [2, 3])
    with pytest.raises(ApplicationError, match="nothing to cancel"):
        payment_plan_cancel(organization=stripe_organization, actor=manager, plan=plan)


def test_a_role_not_allowed_cannot_cancel_and_nothing_changes(stripe_world, stripe_organization, manager, staff_user, location, card):
    plan = _create(stripe_organization, manager, card, location)
    with pytest.raises(ApplicationError):
        payment_plan_cancel(organization=stripe_organization, actor=staff_user, plan=plan)
    plan.refresh_from_db()
    assert plan.status == "active" and plan.instalments.filter(status="scheduled").count() == 3


def test_the_instalments_due_on_a_day_for_the_automation_page(stripe_world, stripe_organization, manager, location, card, patient):
    today = clinic_today(stripe_organization)
    plan = _create(stripe_organization, manager, card, location, first_due=today + datetime.timedelta(days=1))
    # another clinic's plan due the same day is not listed
    other_org = OrganizationFactory(name="Lakeside Pediatrics", timezone=stripe_organization.timezone)
    assert list(plan_instalments_due_on(organization=other_org, day=today + datetime.timedelta(days=1))) == []

    due = list(plan_instalments_due_on(organization=stripe_organization, day=today + datetime.timedelta(days=1)))
    assert due == [plan.instalments.get(number=1)]
    assert list(plan_instalments_due_on(organization=stripe_organization, day=today)) == []
    assert list(plan_instalments_due_on(organization=stripe_organization, day=add_months(today + datetime.timedelta(days=1), 1))) == [
        plan.instalments.get(number=2)
    ]
    payment_plan_cancel(organization=stripe_organization, actor=manager, plan=plan)
    assert list(plan_instalments_due_on(organization=stripe_organization, day=today + datetime.timedelta(days=1))) == []


# -- reliability: two chargers at once, and a charger killed mid-charge ---------------------------------


def _in_threads(count, work):
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as error:
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_the_charging_task_run_twice_at_once_charges_once(stripe_world, stripe_organization, manager, location, card):
    plan = _create(stripe_organization, manager, card, location)
    first = plan.instalments.get(number=1)

    results = _in_threads(4, lambda _index: payment_plan_instalments_charge_due(now=first.next_attempt_at))

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(results) == 1
    assert len(_intents(stripe_world)) == 1
    assert Transaction.objects.count() == 1 and PaymentPlanAttempt.objects.count() == 1
    first.refresh_from_db()
    assert (first.status, first.transaction.charged_cents) == ("paid", 4000)


@pytest.mark.reliability
@pytest.mark.django_db(transaction=True)
def test_a_charger_killed_mid_charge_is_taken_over_with_the_same_key_and_charges_once(
    stripe_world, stripe_organization, manager, location, card
):
    plan = _create(stripe_organization, manager, card, location)
    first = plan.instalments.get(number=1)
    due = first.next_attempt_at

    # given a charger that claimed the instalment, reached Stripe, and died before recording the
    # answer (Stripe's reply is lost on the way back, as when the worker is killed then)
    stripe_world.http.fail_after("POST", "/v1/payment_intents")
    attempt = _claim(first.pk, due)
    from transactions.enums import CollectionRule
    from transactions.services.saved_cards import saved_card_charge

    saved_card_charge(
        organization=stripe_organization, actor=None, saved_card=card, amount_cents=4000, kind="balance",
        billing_item="x", location=location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=attempt.idempotency_key,
    )  # fmt: skip

    # while its claim holds, no one else charges it, however many run at once
    results = _in_threads(3, lambda _index: payment_plan_instalments_charge_due(now=due + datetime.timedelta(minutes=1)))
    assert results == [0, 0, 0]

    # once the claim has run out, the next runs (several at once) take it over with the same key
    later = due + datetime.timedelta(minutes=11)
    results = _in_threads(3, lambda _index: payment_plan_instalments_charge_due(now=later))
    assert not [r for r in results if isinstance(r, BaseException)], results
    first.refresh_from_db()
    assert first.status == "paid" and first.attempts == 1
    assert Transaction.objects.count() == 1 and PaymentPlanAttempt.objects.count() == 1
    keys = [request.idempotency_key for request in _intents(stripe_world)]
    assert set(keys) == {f"plan_instalment:{first.pk}:1"}
    assert Transaction.objects.get().charged_cents == 4000


def test_the_decline_notice_is_in_the_patients_language(
    stripe_world, stripe_organization, manager, location, mailoutbox, django_capture_on_commit_callbacks
):
    patient = PatientFactory(organization=stripe_organization, preferred_language="es")
    card = _card(stripe_world, stripe_organization, patient, CARD_DECLINED_AT_CHARGE)
    plan = _create(stripe_organization, manager, card, location)
    first = plan.instalments.get(number=1)

    with django_capture_on_commit_callbacks(execute=True):
        payment_plan_instalment_charge(instalment_id=first.pk, now=first.next_attempt_at)

    assert mailoutbox[0].subject == "Riverside Family Medicine: su pago del plan de $40.00 no se completó"
    assert "Intentaremos cobrar a la tarjeta de nuevo el" in mailoutbox[0].body
    assert sms.outbox[0].body.startswith("Riverside Family Medicine: su pago del plan de $40.00 no se completó. Lo intentaremos de nuevo el")


def test_a_charge_declined_while_the_plan_was_being_cancelled_is_not_retried_or_told(
    stripe_world, stripe_organization, manager, location, declining_card, mailoutbox, django_capture_on_commit_callbacks
):
    from transactions.services.payment_plans import _outcome_record
    from transactions.services.saved_cards import saved_card_charge
    from transactions.enums import CollectionRule

    plan = _create(stripe_organization, manager, declining_card, location)
    first = plan.instalments.get(number=1)
    # given a charger that claimed the first instalment and is charging it
    attempt = _claim(first.pk, first.next_attempt_at)
    # when staff cancel the plan meanwhile, and the card is then declined
    payment_plan_cancel(organization=stripe_organization, actor=manager, plan=plan)
    declined = saved_card_charge(
        organization=stripe_organization, actor=None, saved_card=declining_card, amount_cents=4000, kind="balance",
        billing_item="x", location=location, rule=CollectionRule.PLAN_INSTALMENT, idempotency_key=attempt.idempotency_key,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        _outcome_record(attempt.pk, transaction=declined, failure=declined.last_error, now=first.next_attempt_at)

    # then it is cancelled with the others, with no retry, no link and no message
    first.refresh_from_db()
    assert (first.status, first.next_attempt_at, first.payment_request) == ("cancelled", first.next_attempt_at, None)
    assert mailoutbox == [] and not PaymentRequestDelivery.objects.exists()
    assert payment_plan_instalments_charge_due(now=first.next_attempt_at + datetime.timedelta(days=30)) == 0


def test_the_automation_page_lists_tomorrows_instalment_among_what_lumapay_will_do(stripe_world, stripe_organization, manager, location, card):
    from transactions.selectors.collection_schedule import automation_planned, clinic_day

    tomorrow = clinic_today(stripe_organization) + datetime.timedelta(days=1)
    plan = _create(stripe_organization, manager, card, location, first_due=tomorrow)
    first = plan.instalments.get(number=1)
    start, end = clinic_day(stripe_organization, tomorrow)

    planned = [action for action in automation_planned(organization=stripe_organization, start=start, end=end) if action.rule == "plan_instalment"]

    assert [(action.at, action.patient_id, action.amount_cents, action.what) for action in planned] == [
        (first.next_attempt_at, plan.patient_id, 4000, "Instalment 1 of 3")
    ]
    # The day after tomorrow holds none of it (the second instalment is a month on).
    later_start, later_end = clinic_day(stripe_organization, tomorrow + datetime.timedelta(days=1))
    assert not [a for a in automation_planned(organization=stripe_organization, start=later_start, end=later_end) if a.rule == "plan_instalment"]
