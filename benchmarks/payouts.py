"""The payouts measures of `make bench` (``--only payouts``), each beside a baseline measured in the
same run, the two run alternately:

1. **A payout's page with 10,000 lines** (``/payouts/<pk>/``, the real view through Django's test
   client with a manager signed in, both steps): its first page of lines and a page 9,900 lines
   deep. Baseline: the same work done minimally on the same connection, in the same row-level
   security scope: the payout, its totals by kind and the 100 lines read with hand-written SQL and
   written out as HTML with plain string formatting. Target: median < 200 ms.
2. **The payouts list** (``/payouts/``) of a clinic with 5 years of daily payouts (and, as the hard
   case, of one with 100,000 payouts over the same 5 years) under each filter alone and combined,
   rare and wide ones, on the first page and a deep one. Baseline: the SQL the page ran, replayed
   on the same connection as the page ran it (row-level security, the member's organization).
   Target: median < 100 ms.
3. **The CSV export of 100,000 payouts** (the real view, POSTed through the test client, its
   streamed body read to the end) against a bare loop: the same SELECT through a psycopg
   server-side cursor (2,000 rows a fetch, as ours) into ``csv.writer``, row by row. Target: within
   1.3x (wall time), CPU time of this process in the notes.

The data is generated once (COPY and bulk inserts) and kept in the bench database, keyed by
``SLUG``: four clinics of uneven size in three time zones, each with locations, members, patients,
paid transactions, payouts of every status and method, the payouts' lines (payments, refunds, fees,
disputes, adjustments) linked to those transactions, and a balance per currency.
"""

from __future__ import annotations

import csv
import datetime
import io
import random
import statistics
import time
from dataclasses import dataclass

SLUG = "payouts-bench"
YEARS_DAYS = 5 * 365 + 1
BUSY_PAYOUTS = 100_000  # bench clinic 0: 100,000 payouts in 5 years (instant payouts on demand)
BUSY_LINES_DAYS = 365  # the busy clinic's lines: its last year of payouts (older ones keep their counts only)
LINES_PER_DAILY_PAYOUT = 24
BIG_PAYOUT_LINES = 10_000
DETAIL_TARGET_MS = 200.0
LIST_TARGET_MS = 100.0
EXPORT_RATIO = 1.3
PAGE_SIZE = 25
DEEP_ROWS = 1_000  # the list's deep page: 40 pages of 25 in


@dataclass(frozen=True)
class Clinic:
    number: int
    name: str
    zone: str
    days: int  # how many days of payouts, back from today
    per_day: int  # payouts a day (the busy clinic: ~55)
    lines_per_payout: int
    patients: int


CLINICS = (
    Clinic(0, "Payouts bench group (100,000 payouts)", "America/Los_Angeles", YEARS_DAYS, 0, 1, 20_000),
    Clinic(1, "Payouts bench clinic (5 years daily)", "America/New_York", YEARS_DAYS, 1, LINES_PER_DAILY_PAYOUT, 12_000),
    Clinic(2, "Payouts bench clinic (2 years daily)", "America/Chicago", 730, 1, 12, 4_000),
    Clinic(3, "Payouts bench clinic (6 months)", "America/New_York", 182, 1, 6, 800),
)
STATUS_WEIGHTS = (("paid", 0.93), ("failed", 0.04), ("canceled", 0.01), ("in_transit", 0.015), ("pending", 0.005))


# -- the data --------------------------------------------------------------------------------------


def _world(log):
    """The bench organizations (generated now if missing), their managers, and the moment they were made."""
    from org_profile.models import Organization

    organizations = list(Organization.objects.filter(slug__startswith=f"{SLUG}-").order_by("slug"))
    if len(organizations) == len(CLINICS):
        return organizations, organizations[0].created_at
    if organizations:
        raise SystemExit(f"benchmarks: a partial payouts data set ({SLUG}-*) is in the bench database; drop it first.")
    started = time.monotonic()
    now = datetime.datetime.now(datetime.timezone.utc)
    from django.db import connection

    with connection.cursor() as cursor:
        # Triggers off while loading rows consistent by construction (as generate.py does): the
        # daily totals' per-row trigger would make 100,000 transactions take many minutes.
        cursor.execute("SET session_replication_role = replica")
    try:
        organizations = [_clinic_fill(clinic, now, log) for clinic in CLINICS]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
    with connection.cursor() as cursor:
        cursor.execute("SELECT transactions_daily_total_rebuild(id) FROM org_profile_organization WHERE slug LIKE %s",
                       [f"{SLUG}-%"])
        cursor.execute("VACUUM (ANALYZE) payouts_payout")
        cursor.execute("VACUUM (ANALYZE) payouts_payoutline")
        cursor.execute("ANALYZE transactions_transaction")
    log(f"  payouts: generated the data set in {time.monotonic() - started:.0f} s")
    Organization.objects.filter(pk=organizations[0].pk).update(created_at=now)
    organizations[0].created_at = now
    return organizations, now


def _clinic_fill(clinic: Clinic, now: datetime.datetime, log):
    from zoneinfo import ZoneInfo

    from django.db import connection

    from ehr_sync.models import Patient
    from org_profile.enums import Role
    from org_profile.models import Location, Membership, Organization, User
    from payouts.models import GatewayBalance
    from transactions.models import Transaction

    rng = random.Random(clinic.number)
    zone = ZoneInfo(clinic.zone)
    organization = Organization.objects.create(
        name=clinic.name, slug=f"{SLUG}-{clinic.number}", legal_name=f"{clinic.name} PLLC",
        address_line1="1 Bench Street", city="Springfield", timezone=clinic.zone,
    )
    locations = [Location.objects.create(organization=organization, name=f"Clinic {n}") for n in range(3)]
    for role in (Role.MANAGER, Role.ADMINISTRATOR):
        user = User.objects.create(email=f"{role}@{SLUG}-{clinic.number}.test", username=f"{role}@{SLUG}-{clinic.number}.test")
        Membership.objects.create(user=user, organization=organization, role=role)
    patients = Patient.objects.bulk_create(
        [
            Patient(organization=organization, first_name="Bench", last_name=f"Patient{n}",
                    date_of_birth=datetime.date(1950 + n % 60, 1 + n % 12, 1 + n % 28),
                    email=f"p{clinic.number}.{n}@example.com", external_ehr_id=f"MRN{n}")
            for n in range(clinic.patients)
        ],
        batch_size=5000,
    )
    today = now.astimezone(zone).date()
    first_day = today - datetime.timedelta(days=clinic.days - 1)

    # The payouts: one a day (the busy clinic: 100,000 spread over the days), newest in transit or pending.
    payout_rows = []
    if clinic.per_day:
        moments = [datetime.datetime.combine(first_day + datetime.timedelta(days=d), datetime.time(17, 0), zone)
                   for d in range(clinic.days)]
    else:
        moments = sorted(
            datetime.datetime.combine(first_day + datetime.timedelta(days=rng.randrange(clinic.days)),
                                      datetime.time(rng.randrange(7, 22), rng.randrange(60), rng.randrange(60)), zone)
            for _ in range(BUSY_PAYOUTS)
        )
    for index, created in enumerate(moments):
        age_days = (now - created).days
        instant = not clinic.per_day and rng.random() < 0.6 or clinic.per_day and rng.random() < 0.03
        arrival = created.date() + datetime.timedelta(days=0 if instant else 2)
        if age_days <= 0:
            status = "pending"
        elif age_days <= 2 and not instant:
            status = "in_transit"
        else:
            status = rng.choices([s for s, _ in STATUS_WEIGHTS], [w for _, w in STATUS_WEIGHTS])[0]
            if status in ("in_transit", "pending"):
                status = "paid"
        amount = max(100, int(rng.lognormvariate(12.6 if clinic.per_day else 11.0, 0.6)))
        failed = status == "failed"
        payout_rows.append((
            organization.pk, "stripe", f"po_{clinic.number}_{index:07d}", amount, "usd", status,
            "instant" if instant else "standard", not instant, created, arrival, "First Springfield Bank",
            f"{rng.randrange(10_000):04d}", "" if status == "pending" else f"TRC{clinic.number}{index:010d}",
            "account_closed" if failed else "", "The bank account has been closed." if failed else "",
            "STRIPE PAYOUT", int(created.timestamp()),
            "waiting" if status == "pending" else ("difference" if index % 997 == 0 else "matched"),
            0, None, None, "", now, now,
        ))
    payout_columns = (
        "organization_id", "gateway", "gateway_payout_id", "amount_cents", "currency", "status", "method",
        "automatic", "created_at", "arrival_date", "bank_name", "bank_last4", "trace_id", "failure_code",
        "failure_message", "description", "as_of", "reconciliation", "lines_count", "lines_net_cents",
        "reconciled_at", "reconcile_error", "recorded_at", "updated_at",
    )
    _copy(connection, "payouts_payout", payout_columns, payout_rows)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, created_at, amount_cents, status FROM payouts_payout WHERE organization_id = %s ORDER BY created_at, id",
            [organization.pk],
        )
        payouts = cursor.fetchall()

    # The transactions the lines carry: one paid transaction per payment line.
    per_payout = clinic.lines_per_payout
    big_payout = payouts[-30] if clinic.number == 1 else None  # a payout a month back carrying 10,000 lines
    lines_from = now - datetime.timedelta(days=BUSY_LINES_DAYS) if not clinic.per_day else None

    def carries_lines(payout) -> bool:
        return payout[3] != "pending" and (lines_from is None or payout[1] >= lines_from)

    payment_lines = sum((BIG_PAYOUT_LINES if big_payout and p[0] == big_payout[0] else per_payout)
                        for p in payouts if carries_lines(p))
    transactions = []
    for batch_start in range(0, payment_lines, 5000):
        batch = [
            Transaction(
                organization=organization, patient=patients[rng.randrange(len(patients))], location=locations[n % 3],
                kind="copay" if n % 3 else "balance", billing_item="Office visit copay" if n % 3 else "Balance after insurance",
                amount_cents=2_000 + rng.randrange(30_000), vendor="stripe", status="succeeded",
                card_brand="visa", card_last4="4242",
            )
            for n in range(batch_start, min(batch_start + 5000, payment_lines))
        ]
        for transaction in batch:
            transaction.charged_cents = transaction.amount_cents
            transaction.fee_cents = round(transaction.amount_cents * 0.029) + 30
        transactions += Transaction.objects.bulk_create(batch)
    log(f"  payouts: {clinic.name}: {len(payouts):,} payouts, {len(transactions):,} transactions")

    # The lines: payments (each its transaction), a refund now and then, the odd dispute, fees and an
    # adjustment; the last line balances the payout to the cent (or a cent off, for the ones marked
    # "difference").
    line_rows = []
    next_transaction = 0
    line_number = 0
    with connection.cursor() as cursor:
        updates = []
        for payout_id, created, amount, status in payouts:
            if not carries_lines((payout_id, created, amount, status)):
                continue
            count = BIG_PAYOUT_LINES if big_payout and payout_id == big_payout[0] else per_payout
            net_total = 0
            for n in range(count):
                transaction = transactions[next_transaction]
                next_transaction += 1
                line_number += 1
                moment = created - datetime.timedelta(days=2, seconds=(count - n) * 7)
                kind = "charge"
                gross, fee, linked = transaction.charged_cents, transaction.fee_cents, transaction.pk
                if n % 17 == 5:
                    kind, gross, fee = "refund", -(transaction.charged_cents // 2), 0
                elif n % 251 == 9:
                    kind, gross, fee = "dispute", -transaction.charged_cents, 1_500
                elif n % 97 == 3:
                    kind, gross, fee, linked = "fee", -(200 + n % 300), 0, None
                net = gross - fee
                net_total += net
                line_rows.append((organization.pk, payout_id, f"txn_{clinic.number}_{line_number:08d}", kind, gross, fee,
                                  net, "usd", moment, moment.date(), f"ch_{clinic.number}_{line_number:08d}",
                                  f"ch_{clinic.number}_{line_number:08d}", linked))
            # The adjustment that makes the lines add up to the payout (as a processor's would).
            line_number += 1
            if count == BIG_PAYOUT_LINES:
                amount = net_total + 1_234  # the big day's payout is what its lines carry
            adjust = amount - net_total + (1 if payout_id % 997 == 0 else 0)
            line_rows.append((organization.pk, payout_id, f"txn_{clinic.number}_{line_number:08d}", "adjustment", adjust, 0,
                              adjust, "usd", created, created.date(), "", "", None))
            updates.append((amount, count + 1, net_total + adjust, created, payout_id))
            if len(line_rows) >= 50_000:
                _copy(connection, "payouts_payoutline", LINE_COLUMNS, line_rows)
                line_rows = []
        _copy(connection, "payouts_payoutline", LINE_COLUMNS, line_rows)
        cursor.executemany(
            "UPDATE payouts_payout SET amount_cents = %s, lines_count = %s, lines_net_cents = %s, reconciled_at = %s "
            "WHERE id = %s", updates
        )
    GatewayBalance.objects.create(
        organization=organization, currency="usd", available_cents=rng.randrange(100_000, 900_000),
        pending_cents=rng.randrange(50_000, 400_000), next_payout_date=today + datetime.timedelta(days=1),
        next_payout_estimate_cents=rng.randrange(100_000, 900_000),
    )
    return organization


LINE_COLUMNS = (
    "organization_id", "payout_id", "gateway_line_id", "kind", "amount_cents", "fee_cents", "net_cents", "currency",
    "created_at", "available_on", "source_id", "charge_id", "transaction_id",
)


def _copy(connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# -- the measures ----------------------------------------------------------------------------------


def bench_payouts(*, runs: int, export_runs: int, timed, result, log=print) -> list[dict]:
    from django.test import Client

    from org_profile.models import Membership

    from .signed_in import sign_in

    organizations, now = _world(log)
    clients = {}
    for organization in organizations:
        membership = Membership.objects.select_related("user").get(organization=organization, role="manager")
        clients[organization.pk] = Client()
        sign_in(clients[organization.pk], membership.user)
    results = []
    results += _bench_detail(organizations[1], clients[organizations[1].pk], runs=runs, timed=timed, result=result, log=log)
    for organization in (organizations[1], organizations[0]):
        results += _bench_list(organization, clients[organization.pk], now, runs=runs, timed=timed, result=result, log=log)
    results += _bench_export(organizations[0], clients[organizations[0].pk], runs=export_runs, result=result, log=log)
    return results


def _bench_detail(organization, client, *, runs, timed, result, log) -> list[dict]:
    from django.db import connection

    from lumapay.money import format_cents
    from lumapay.tenant_rls import organization_scope
    from payouts.models import Payout, PayoutLine
    from transactions.selectors.dashboard import Cursor

    payout = Payout.objects.filter(organization=organization, lines_count__gte=BIG_PAYOUT_LINES).get()
    deep_line = PayoutLine.objects.filter(payout=payout).order_by("created_at", "id")[9_899]
    rows = []
    for page_name, after in (("first 100 lines", None), ("lines 9,901-10,000", Cursor.of(deep_line))):
        url = f"/payouts/{payout.pk}/" + (f"?after={after.encode()}" if after else "")
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        assert format_cents(payout.lines_net_cents, payout.currency) in html
        assert html.count('data-label="Kind">') >= 100, html.count('data-label="Kind">')

        def baseline(after=after):
            # The same reads and a page of the same facts, done minimally: hand-written SQL in the
            # member's scope and the HTML written with plain string formatting.
            with organization_scope(organization.pk), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id, amount_cents, currency, status, arrival_date, bank_last4, trace_id, failure_message "
                    "FROM payouts_payout WHERE organization_id = %s AND id = %s", [organization.pk, payout.pk])
                head = cursor.fetchone()
                cursor.execute(
                    "SELECT kind, count(*), sum(amount_cents), sum(fee_cents), sum(net_cents) FROM payouts_payoutline "
                    "WHERE organization_id = %s AND payout_id = %s GROUP BY kind", [organization.pk, payout.pk])
                kinds = cursor.fetchall()
                if after is None:
                    cursor.execute(
                        "SELECT id, kind, amount_cents, fee_cents, net_cents, created_at, source_id, "
                        "transaction_id FROM payouts_payoutline WHERE organization_id = %s AND payout_id = %s "
                        "ORDER BY created_at, id LIMIT 101", [organization.pk, payout.pk])
                else:
                    cursor.execute(
                        "SELECT id, kind, amount_cents, fee_cents, net_cents, created_at, source_id, "
                        "transaction_id FROM payouts_payoutline WHERE organization_id = %s AND payout_id = %s "
                        "AND (created_at, id) > (%s, %s) ORDER BY created_at, id LIMIT 101",
                        [organization.pk, payout.pk, after.created_at, after.pk])
                lines = cursor.fetchall()
            html = [f"<h1>{head[1]}</h1><p>{head[4]} {head[5]} {head[6]}</p><table>"]
            html += [f"<tr><td>{k}</td><td>{c}</td><td>{a}</td><td>{f}</td><td>{n}</td></tr>" for k, c, a, f, n in kinds]
            html += [f"<tr><td>{line[5]}</td><td>{line[1]}</td><td>{line[2]}</td><td>{line[3]}</td><td>{line[4]}</td>"
                     f"<td><a href=\"/transactions/{line[7]}/\">{line[7]}</a></td><td>{line[6]}</td></tr>" for line in lines[:100]]
            return "".join(html)

        page_times, base_times = timed(lambda: client.get(url), baseline, runs)
        page_ms, base_ms = statistics.median(page_times), statistics.median(base_times)
        log(f"  payout detail (10,000 lines), {page_name}: {page_ms:.1f} ms (minimal {base_ms:.1f} ms)")
        rows.append(result(
            f"payout detail: 10,000 lines, {page_name}", page_ms, base_ms, "median < 200 ms", "ms", BIG_PAYOUT_LINES,
            limit=DETAIL_TARGET_MS, times=page_times, baseline_times=base_times,
            notes=f"{runs} runs; the view through the test client, signed in, against the same reads in hand-written "
                  f"SQL and plain string HTML on the same connection and scope",
        ))
    return rows


def _list_cases(today: datetime.date):
    def day(days_back):
        return (today - datetime.timedelta(days=days_back)).isoformat()

    last_quarter_start = (today.replace(day=1) - datetime.timedelta(days=80)).replace(day=1)
    return [
        ("no filter", {}),
        ("status: paid", {"status": ["paid"]}),
        ("status: failed (rare)", {"status": ["failed"]}),
        ("status: cancelled (rarest)", {"status": ["canceled"]}),
        ("status: in transit + pending", {"status": ["in_transit", "pending"]}),
        ("method: instant", {"method": "instant"}),
        ("method: standard", {"method": "standard"}),
        ("amount from $1,000", {"amount_min": "1000"}),
        ("amount $300 to $310 (narrow)", {"amount_min": "300", "amount_max": "310"}),
        ("amount over $20,000 (almost none)", {"amount_min": "20000"}),
        ("created: last 30 days", {"created_from": day(30)}),
        ("created: 5 years (everything)", {"created_from": day(5 * 365 + 1), "created_to": today.isoformat()}),
        ("created: a year, 3 years back", {"created_from": day(3 * 365), "created_to": day(2 * 365)}),
        ("arrival: a month, 2 years back", {"arrival_from": day(760), "arrival_to": day(730)}),
        ("arrival: from a year back", {"arrival_from": day(365)}),
        ("failed last quarter", {"status": ["failed"], "created_from": last_quarter_start.isoformat(),
                                 "created_to": (last_quarter_start + datetime.timedelta(days=91)).isoformat()}),
        ("instant + failed + amount from $500", {"method": "instant", "status": ["failed"], "amount_min": "500"}),
        ("every filter", {"status": ["paid", "failed"], "method": "standard", "amount_min": "200", "amount_max": "5000",
                          "created_from": day(4 * 365), "created_to": day(30), "arrival_from": day(4 * 365),
                          "arrival_to": day(20)}),
    ]


def _bench_list(organization, client, now, *, runs, timed, result, log) -> list[dict]:
    from zoneinfo import ZoneInfo

    from django.db import connection
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext

    from payouts.filters import PayoutFilter
    from transactions.filters import query_from_params
    from transactions.selectors.dashboard import Cursor

    from .dashboard import _replayer

    today = now.astimezone(ZoneInfo(organization.timezone)).date()
    total = organization and PayoutFilter(None, organization=organization).qs.count()
    label = "5 years daily" if total < 10_000 else f"{total:,} payouts"
    rows = []
    for case_name, params in _list_cases(today):
        data = query_from_params(params)
        filtered = PayoutFilter(data, organization=organization).qs
        count = filtered.count()
        query = data.urlencode()
        pages = [("first page", query)]
        if count > PAGE_SIZE:
            depth = min(DEEP_ROWS, count - 1)
            deep = filtered.order_by("-created_at", "-id")[depth - 1]
            cursor_param = f"older_than={Cursor.of(deep).encode()}"
            pages.append((f"{depth:,} rows deep", f"{query}&{cursor_param}" if query else cursor_param))
        for page_name, page_query in pages:
            url = f"/payouts/?{page_query}" if page_query else "/payouts/"
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            said = f"{count:,} payout{'' if count == 1 else 's'}"
            assert said in response.content.decode(), (case_name, said)
            with CaptureQueriesContext(connection) as captured:
                client.get(url)
            replay, statements = _replayer([q["sql"] for q in captured.captured_queries], organization.pk)
            page_times, raw_times = timed(lambda: client.get(url), replay, runs)
            page_ms, raw_ms = statistics.median(page_times), statistics.median(raw_times)
            name = f"payouts list ({label}): {case_name}, {page_name}"
            log(f"  {name}: {page_ms:.1f} ms (raw SQL {raw_ms:.1f} ms), {count:,} rows")
            rows.append(result(
                name, page_ms, raw_ms, "median < 100 ms", "ms", count, limit=LIST_TARGET_MS,
                times=page_times, baseline_times=raw_times,
                notes=f"{statements} SQL statements, {runs} runs; {QueryDict(query).dict() if query else 'no filter'}",
            ))
    return rows


def _bench_export(organization, client, *, runs, result, log) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from lumapay.tenant_rls import organization_scope
    from payouts.models import Payout

    expected = Payout.objects.filter(organization=organization).count()

    def ours():
        response = client.post("/payouts/export/")
        assert response.status_code == 200
        size = 0
        for chunk in response.streaming_content:
            size += len(chunk)
        return size

    with CaptureQueriesContext(connection) as captured:
        ours()
    declared = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("DECLARE ")]
    assert len(declared) == 1, declared
    select = declared[0].split(" FOR ", 1)[1]

    class Echo:
        def write(self, value):
            return value

    def bare():
        # The bare loop: the same SELECT through a server-side cursor, 2,000 rows a fetch, each row
        # written by csv.writer; in the same scope (row-level security) as ours.
        connection.ensure_connection()
        writer = csv.writer(Echo())
        size = len(writer.writerow(["header"] * 11))
        with organization_scope(organization.pk), connection.connection.cursor(name="bare_export", withhold=True) as cursor:
            cursor.itersize = 2000
            cursor.execute(select)
            rows = 0
            for row in cursor:
                size += len(writer.writerow(row).encode())
                rows += 1
        assert rows == expected, (rows, expected)
        return size

    ours_size, bare_size = ours(), bare()
    ours_wall, bare_wall, ours_cpu, bare_cpu = [], [], [], []
    for _ in range(runs):
        for action, wall, cpu in ((ours, ours_wall, ours_cpu), (bare, bare_wall, bare_cpu)):
            started, started_cpu = time.perf_counter(), time.process_time()
            action()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    ours_s, bare_s = statistics.median(ours_wall), statistics.median(bare_wall)
    log(f"  payouts CSV: {ours_s:.3f} s (bare loop {bare_s:.3f} s), {expected:,} rows, {ours_size / 1e6:.1f} MB")
    return [
        result("payouts CSV: 100,000 payouts, wall time", ours_s, bare_s, f"<= {EXPORT_RATIO}x the bare loop", "s",
               expected, limit=EXPORT_RATIO * bare_s, times=ours_wall, baseline_times=bare_wall,
               notes=f"{runs} runs each, alternated; the view POSTed through the test client (audit event, count, "
                     f"streamed body read to the end) against psycopg's server-side cursor into csv.writer; this "
                     f"process's CPU {statistics.median(ours_cpu):.3f} s vs {statistics.median(bare_cpu):.3f} s; "
                     f"{ours_size / 1e6:.1f} MB (bare {bare_size / 1e6:.1f} MB)"),
    ]
