"""The collection scheduler's pass (``transactions.services.collection_schedule``) over 100,000
upcoming appointments of which 1% are due, in eight organizations of uneven size (42,000 down to
500 appointments), in six time zones, with every table the selection reads filled: 50,000
patients (5% unreachable), an active card on file for 20% of them (three organizations hold
copays on cards), balances for all, automatic copay requests already made for 1% of the
appointments and staff requests for 10% of the patients, paid transactions for another 1%.

Two figures:

1. **Selection.** The pass's selection of the due appointments (``copay_requests_due``: the ORM
   query with its subqueries and ``FOR UPDATE OF … SKIP LOCKED``, which a pass runs to find and
   lock its batch), taking every due appointment at once, against the bare SQL that selects the
   same appointments' ids (the same predicates written by hand, no locking). Target: within 3x.
   Paired runs, alternated. What each request then needs (patient, location, organization) is read
   a batch at a time and counted below, with the hold rule's share of each batch (one query per
   organization holding copays: ``without_those_left_to_hold_rule``), and the whole pass's time is
   printed.
2. **Queries per due item.** Whole passes (``collection_schedule_run``) with all the due
   appointments, half of them, and none (the other half's copay set to 0 inside the pass's own
   transaction), each inside a transaction rolled back after (nothing is committed or sent), queries
   counted: ``(queries - queries with none due) / due`` is the same at both sizes.

The data is generated once (bulk inserts) and kept in the bench database, keyed by ``SLUG``; the
pass's ``now`` is the generation moment, so the due share stays 1% however long it is kept.
"""

from __future__ import annotations

import datetime
import statistics
import time

SLUG = "schedule-bench"
SIZES = (42_000, 25_000, 15_000, 9_000, 5_000, 2_500, 1_000, 500)
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix",
         "Pacific/Honolulu", "America/Anchorage", "America/New_York")
HOLD_ORGANIZATIONS = {0, 2, 4}
LEAD_HOURS = 48
RATIO = 3.0

BARE_SQL = """
    SELECT a.id
    FROM ehr_sync_appointment a
    JOIN transactions_collectionrules r ON r.organization_id = a.organization_id
    JOIN org_profile_organization o ON o.id = a.organization_id
    JOIN ehr_sync_patient p ON p.id = a.patient_id
    WHERE r.copay_request_enabled AND a.status = 'booked' AND a.copay_cents > 0
      AND a.starts_at > %(now)s AND a.starts_at <= %(now)s + r.copay_request_hours_before * interval '1 hour'
      AND (p.email <> '' OR (p.mobile_phone <> '' AND p.sms_consent))
      AND (r.quiet_hours_start = r.quiet_hours_end
           OR (r.quiet_hours_start < r.quiet_hours_end
               AND (timezone(o.timezone, %(now)s)::time < r.quiet_hours_start
                    OR timezone(o.timezone, %(now)s)::time >= r.quiet_hours_end))
           OR (r.quiet_hours_start > r.quiet_hours_end
               AND timezone(o.timezone, %(now)s)::time >= r.quiet_hours_end
               AND timezone(o.timezone, %(now)s)::time < r.quiet_hours_start))
      AND NOT EXISTS (SELECT 1 FROM transactions_paymentrequest pr WHERE pr.appointment_id = a.id
                      AND (pr.automation_rule = 'copay_before_visit' OR (pr.kind = 'copay' AND pr.status IN ('open', 'paid'))))
      AND NOT EXISTS (SELECT 1 FROM transactions_transaction t WHERE t.appointment_id = a.id
                      AND (t.charged_cents > 0 OR (t.status = 'authorized' AND t.created_at > %(now)s - interval '7 days')))
    ORDER BY a.starts_at, a.id
"""


def _world(log):
    """The bench organizations (generated now if missing) and the moment they were generated for."""
    from org_profile.models import Organization

    first = Organization.objects.filter(slug=f"{SLUG}-0").first()
    if first is not None:
        return list(Organization.objects.filter(slug__startswith=f"{SLUG}-").order_by("slug")), first.created_at
    started = time.monotonic()
    now = datetime.datetime.now(datetime.timezone.utc)
    organizations = [_organization_fill(number, size, now) for number, size in enumerate(SIZES)]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    log(f"  schedule: generated {sum(SIZES):,} appointments in {len(SIZES)} organizations in {time.monotonic() - started:.0f} s")
    Organization.objects.filter(pk=organizations[0].pk).update(created_at=now)
    return organizations, now


def _organization_fill(number: int, size: int, now: datetime.datetime):
    from ehr_sync.enums import AppointmentStatus
    from ehr_sync.models import Appointment, Balance, Patient
    from org_profile.models import Location, Organization
    from transactions.enums import CollectionRule, PaymentRequestKind, PaymentRequestStatus, SavedCardStatus
    from transactions.models import BalanceAsked, CollectionRules, PaymentRequest, SavedCard, Transaction
    from transactions.selectors.collection_schedule import copay_request_expires_at

    organization = Organization.objects.create(
        name=f"Schedule bench clinic {number}", slug=f"{SLUG}-{number}", legal_name=f"Schedule bench clinic {number} PLLC",
        address_line1="1 Bench Street", city="Springfield", timezone=ZONES[number],
    )
    CollectionRules.objects.create(
        organization=organization, copay_request_enabled=number != len(SIZES) - 1, copay_request_hours_before=LEAD_HOURS,
        hold_enabled=number in HOLD_ORGANIZATIONS, balance_request_enabled=True,
        quiet_hours_start=datetime.time(0, 0), quiet_hours_end=datetime.time(0, 0),
    )
    locations = [Location.objects.create(organization=organization, name=f"Clinic {n}") for n in range(3)]
    patient_count = size // 2
    patients = Patient.objects.bulk_create(
        [
            Patient(
                organization=organization, first_name="Bench", last_name=f"Patient{n}", date_of_birth=datetime.date(1980, 1, 1),
                email="" if n % 20 == 7 else f"p{number}.{n}@example.com",
                mobile_phone=f"+1217{n % 10_000_000:07d}" if n % 3 else "", sms_consent=n % 20 != 7 and n % 3 == 1,
                preferred_language="es" if n % 4 == 0 else "en", external_ehr_id=f"MRN{n}",
            )
            for n in range(patient_count)
        ],
        batch_size=5000,
    )
    SavedCard.objects.bulk_create(
        [
            SavedCard(
                organization=organization, patient=patient, vendor=organization.payment_gateway, status=SavedCardStatus.ACTIVE,
                gateway_customer_id=f"cus_{number}_{n}", consent_text="I agree", consented_at=now,
            )
            for n, patient in enumerate(patients)
            if n % 5 == 1
        ],
        batch_size=5000,
    )
    Balance.objects.bulk_create(
        [Balance(organization=organization, patient=patient, amount_due_cents=(n * 37) % 20_000, as_of=now)
         for n, patient in enumerate(patients)],
        batch_size=5000,
    )
    # Steady state: every balance already asked for.
    BalanceAsked.objects.bulk_create(
        [BalanceAsked(organization=organization, patient=patient, asked_cents=(n * 37) % 20_000)
         for n, patient in enumerate(patients)],
        batch_size=5000,
    )
    appointments = []
    for i in range(size):
        category = i % 100
        if category <= 4:  # inside the lead: due (0), asked already (1), paid (2), no copay (3), cancelled (4)
            starts_at = now + datetime.timedelta(minutes=30 + (i * 7919) % ((LEAD_HOURS - 1) * 60))
        else:  # later: up to 60 days ahead
            starts_at = now + datetime.timedelta(hours=LEAD_HOURS + 1, minutes=(i * 7919) % (59 * 24 * 60))
        appointments.append(
            Appointment(
                organization=organization, patient=patients[i % patient_count], location=locations[i % 3],
                provider_name="Dr. Bench", starts_at=starts_at, copay_cents=0 if category == 3 else 2500 + (i % 5) * 500,
                status=AppointmentStatus.CANCELLED if category == 4 else AppointmentStatus.BOOKED, external_ehr_id=f"A{i}",
            )
        )
    appointments = Appointment.objects.bulk_create(appointments, batch_size=5000)
    expires = now + datetime.timedelta(days=30)
    requests = [
        PaymentRequest(
            organization=organization, patient=a.patient, location=a.location, appointment=a, kind=PaymentRequestKind.COPAY,
            billing_item="Your upcoming visit", amount_cents=a.copay_cents,
            expires_at=copay_request_expires_at(a.starts_at), automation_rule=CollectionRule.COPAY_BEFORE_VISIT,
        )
        for i, a in enumerate(appointments)
        if i % 100 == 1
    ]
    requests += [
        PaymentRequest(
            organization=organization, patient=patient, location=locations[0], kind=PaymentRequestKind.OTHER,
            billing_item="Lab work", amount_cents=4000, expires_at=expires,
            status=PaymentRequestStatus.PAID if n % 2 else PaymentRequestStatus.OPEN,
        )
        for n, patient in enumerate(patients)
        if n % 10 == 3
    ]
    PaymentRequest.objects.bulk_create(requests, batch_size=5000)
    Transaction.objects.bulk_create(
        [
            Transaction(
                organization=organization, patient=a.patient, location=a.location, appointment=a, amount_cents=a.copay_cents,
                vendor=organization.payment_gateway, status="succeeded", charged_cents=a.copay_cents, paid_at=now,
            )
            for i, a in enumerate(appointments)
            if i % 100 == 2
        ],
        batch_size=5000,
    )
    return organization


class _Rollback(Exception):
    pass


def _in_rollback(action):
    """Run ``action`` in a transaction that is rolled back after: the data set stays as generated."""
    from django.db import transaction

    result = []
    try:
        with transaction.atomic():
            result.append(action())
            raise _Rollback()
    except _Rollback:
        pass
    return result[0]


def _pass_queries(now, *, keep_due: int | None, due_ids: list[int]) -> tuple[int, int, int, float]:
    """(queries, requests made, messages owed, seconds) of a whole pass with only ``keep_due`` of
    the due appointments left due (the others' copay set to 0 first, in the same rolled-back
    transaction). Queries are counted as they reach the database (no log to overflow)."""
    from django.db import connection

    from ehr_sync.models import Appointment
    from transactions.models import PaymentRequestDelivery
    from transactions.services.collection_schedule import collection_schedule_run

    count = [0]

    def counting(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    def run():
        if keep_due is not None:
            Appointment.objects.filter(pk__in=due_ids[keep_due:]).update(copay_cents=0)
        owed_before = PaymentRequestDelivery.objects.count()
        with connection.execute_wrapper(counting):
            started = time.perf_counter()
            outcome = collection_schedule_run(now=now)
            seconds = time.perf_counter() - started
        return count[0], outcome.copay_sent, PaymentRequestDelivery.objects.count() - owed_before, seconds

    return _in_rollback(run)


def bench_collection_schedule(*, runs: int, log=print) -> list[dict]:
    from django.db import connection

    from lumapay.tenant_rls import all_organizations
    from transactions.selectors.collection_schedule import copay_requests_due

    from .run import _paired_times_ms, _result

    with all_organizations():
        _organizations, generated_at = _world(log)
        now = generated_at

        def bare():
            with connection.cursor() as cursor:
                cursor.execute(BARE_SQL, {"now": now})
                return [row[0] for row in cursor.fetchall()]

        def selection():
            return _in_rollback(
                lambda: list(copay_requests_due(now=now).select_for_update(of=("self",), skip_locked=True).values_list("pk", flat=True))
            )

        due_ids = bare()
        selected = selection()
        assert selected == due_ids, (len(selected), len(due_ids))
        log(f"  schedule: {len(due_ids):,} of {sum(SIZES):,} appointments due ({len(due_ids) / sum(SIZES):.2%})")
        ours, base = _paired_times_ms(selection, bare, runs)

        log(f"  schedule: selection {statistics.median(ours):.1f} ms (bare SQL {statistics.median(base):.1f} ms), "
            f"median of {runs}")
        counted = {}
        for keep in (len(due_ids), len(due_ids) // 2, 0):
            queries, made, owed, seconds = _pass_queries(now, keep_due=keep, due_ids=due_ids)
            assert made == keep, (made, keep)
            counted[keep] = (queries, owed, seconds)
            log(f"  schedule: a pass with {keep:,} due: {queries:,} queries, {owed:,} messages owed, {seconds:.2f} s")
    fixed = counted[0][0]
    full, half = len(due_ids), len(due_ids) // 2
    # Each request costs the same statements, plus one INSERT per message it owes (one per channel
    # the patient has): per item, without the messages' inserts, the figure must be equal.
    per_full = (counted[full][0] - fixed - counted[full][1]) / full
    per_half = (counted[half][0] - fixed - counted[half][1]) / half
    log(f"  schedule: queries per due item: {per_full:.2f} + 1 per message at {full:,} due, {per_half:.2f} + 1 per "
        f"message at {half:,} due (a pass with none due: {fixed} queries)")
    return [
        _result(
            "Scheduler: selecting the due copay requests (100k upcoming, 1% due)",
            statistics.median(ours), statistics.median(base), f"<= {RATIO:.0f}x the bare SQL", "ms", len(due_ids),
            limit=RATIO * statistics.median(base), times=ours, baseline_times=base,
            notes=f"median of {runs}, paired; organizations of {', '.join(f'{s:,}' for s in SIZES)} appointments",
        ),
        _result(
            "Scheduler: queries per due item, + 1 per message (all due vs half due)",
            per_full, per_half, "equal at both sizes", "queries", full,
            limit=per_half,
            notes=f"{counted[full][0]:,} queries and {counted[full][1]:,} messages at {full:,} due, "
                  f"{counted[half][0]:,} and {counted[half][1]:,} at {half:,}, {fixed} with none; whole pass "
                  f"{counted[full][2]:.2f} s at {full:,} due ({counted[full][2] / full * 1000:.2f} ms per request)",
        ),
    ]
