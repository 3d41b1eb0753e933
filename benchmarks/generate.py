"""Load the benchmark data set: 1,000,000 transactions with their payment requests, ledger events,
refunds, audit events and patients across 5 organizations of different sizes (500,000, 250,000,
130,000, 80,000 and 40,000 transactions), with PostgreSQL's COPY (psycopg's ``cursor.copy``).

The rows are what the services would have written: each transaction stands behind a payment
request sent to the patient (a few are charges of a card on file, with none), and the request's
audit trail is there (sent, link opened, checkout started, receipt e-mailed, refunds requested);
each transaction's cached status, charged, refunded, disputed, last error and unresolved problems
are exactly what ``transaction_recalculate`` derives from its events. The status mix is a clinic's:
mostly paid, some declined or never paid, refunds, and rare disputes and card holds. Rows go in
in time order (ids grow with ``created_at``), as in a real append-only table, and the
organizations interleave. Deterministic: one ``random.Random(SEED)``.

A ``benchmark_dataset`` row records what was loaded; when it matches ``DATASET_VERSION`` the
next `make bench` skips generation.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone

from django.db import connection

DATASET_VERSION = 2
SEED = 20260401
TRANSACTION_COUNT = 1_000_000
# Each organization's share of the transactions (and of the patients): one large group practice,
# then smaller clinics.
ORGANIZATION_SHARES = [0.50, 0.25, 0.13, 0.08, 0.04]
ORGANIZATION_COUNT = len(ORGANIZATION_SHARES)
PATIENT_COUNT = 200_000
DAYS = 730
CHUNK = 20_000
EMAIL_DOMAIN = "bench.lumapay.test"

TIMEZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Phoenix"]
# (name, weight): the first location is the busiest, as the main clinic of a practice is.
LOCATIONS = [("Main Street", 30), ("Northside", 20), ("Riverside", 15), ("Eastgate", 15), ("Pediatrics", 10), ("Lab", 10)]
FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "José", "María", "Juan", "Guadalupe", "Luis", "Carmen", "Aisha", "Wei", "Priya", "Kwame",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis",
    "García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Nguyen", "Patel", "Kim", "Okafor",
]
BILLING_ITEMS = {
    "copay": ["Office visit copay", "Specialist visit copay", "Telehealth visit copay", "Urgent care copay"],
    "balance": ["Statement balance", "Lab work balance", "Imaging balance", "Physical therapy balance"],
    "other": ["Medical records fee", "Sports physical", "Flu vaccination", "Missed appointment fee"],
}
COPAYS = [1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 7500]
OTHER_AMOUNTS = [2500, 3500, 6000, 7500]
# Per mille. "failed": the patient's card was declined and nothing paid it on that checkout;
# "pending": the link was opened, the checkout started and never finished.
STATUSES = [
    ("succeeded", 585), ("partially_refunded", 80), ("refunded", 80), ("failed", 130), ("pending", 115),
    ("disputed", 2), ("dispute_lost", 1), ("authorized", 4), ("released", 3),
]
# Share of transactions that are a staff charge of a card on file (no payment request behind them).
CARD_ON_FILE_SHARE = 0.04
BRANDS = [("visa", 55), ("mastercard", 25), ("amex", 12), ("discover", 8)]
DECLINES = ["Your card was declined.", "Your card has insufficient funds."]
REFUND_FAILURE = "The card issuer declined the refund. Refund the patient another way."
REFUND_REASONS = ["Copay charged twice", "Insurance paid the visit in full", "Visit cancelled by the clinic"]


@dataclass(frozen=True)
class Dataset:
    version: int
    generated_at: datetime
    transactions: int
    events: int
    patients: int
    seconds: float
    payment_requests: int = 0
    audit_events: int = 0

    @property
    def organizations(self) -> list[int]:
        """Transactions per organization, largest first (bench-clinic-1 first)."""
        return [round(share * self.transactions) for share in ORGANIZATION_SHARES]


def dataset_loaded() -> Dataset | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('benchmark_dataset') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'benchmark_dataset' "
            "AND column_name = 'audit_events'"
        )
        if cursor.fetchone() is None:  # a data set of version 1
            cursor.execute("SELECT version, generated_at, transactions, events, patients, seconds FROM benchmark_dataset")
        else:
            cursor.execute(
                "SELECT version, generated_at, transactions, events, patients, seconds, payment_requests, audit_events "
                "FROM benchmark_dataset ORDER BY generated_at DESC LIMIT 1"
            )
        row = cursor.fetchone()
    return Dataset(*row) if row else None


def has_rows() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM transactions_transaction)")
        return cursor.fetchone()[0]


class _Columns:
    """A table's columns for COPY: ours, plus a neutral value for any NOT NULL column without a
    default that a later migration added (so the generator keeps working as the schema grows)."""

    _NEUTRAL = {"boolean": False, "jsonb": "{}", "json": "{}"}

    def __init__(self, table: str, ours: list[str]):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name, is_nullable, column_default, data_type, is_identity FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                [table],
            )
            existing = cursor.fetchall()
        names = {row[0] for row in existing}
        missing = [column for column in ours if column not in names]
        if missing:
            raise SystemExit(f"benchmarks: {table} has no column(s) {missing}: update benchmarks/generate.py")
        self.extra: list[tuple[str, object]] = []
        for name, nullable, default, data_type, is_identity in existing:
            if name in ours or nullable == "YES" or default is not None or is_identity == "YES":
                continue
            if data_type in self._NEUTRAL:
                value = self._NEUTRAL[data_type]
            elif data_type in ("integer", "bigint", "smallint", "numeric"):
                value = 0
            elif data_type.startswith("timestamp"):
                value = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
            else:
                value = ""
            self.extra.append((name, value))
        self.table = table
        self.names = ours + [name for name, _ in self.extra]
        self.tail = tuple(value for _, value in self.extra)

    def copy_statement(self) -> str:
        return f"COPY {self.table} ({', '.join(self.names)}) FROM STDIN"


def _copy(raw, columns: _Columns, rows: list[tuple]) -> None:
    if not rows:
        return
    tail = columns.tail
    with raw.cursor() as cursor, cursor.copy(columns.copy_statement()) as copy:
        for row in rows:
            copy.write_row(row + tail if tail else row)


def generate(*, log=print) -> Dataset:
    """Create the organizations, people and locations with the ORM, then COPY the bulk."""
    from org_profile.enums import PaymentGateway, Role
    from org_profile.models import Location, Membership, Organization, User

    started = time.monotonic()
    rng = random.Random(SEED)
    now = datetime.now(dt_timezone.utc).replace(microsecond=0)

    organizations, locations, managers = [], [], []
    for number in range(1, ORGANIZATION_COUNT + 1):
        organization = Organization.objects.create(
            name=f"Bench Clinic {number}",
            slug=f"bench-clinic-{number}",
            payment_gateway=PaymentGateway.STRIPE if number <= 3 else PaymentGateway.SANDBOX,
            timezone=TIMEZONES[(number - 1) % len(TIMEZONES)],
            public_name=f"Bench Clinic {number}",
            address_line1=f"{100 + number} Main Street",
            city="Springfield",
            state="IL",
            postal_code="62701",
        )
        organizations.append(organization)
        locations.append([Location.objects.create(organization=organization, name=name) for name, _ in LOCATIONS])
        manager = User.objects.create_user(email=f"manager{number}@{EMAIL_DOMAIN}", first_name="Morgan", last_name=f"Bench{number}")
        manager.set_unusable_password()
        manager.save(update_fields=["password"])
        Membership.objects.create(user=manager, organization=organization, role=Role.MANAGER)
        managers.append(manager)
    staff = User.objects.create_user(email=f"staff1@{EMAIL_DOMAIN}", first_name="Sam", last_name="Bench")
    staff.set_unusable_password()
    staff.save(update_fields=["password"])
    Membership.objects.create(user=staff, organization=organizations[0], role=Role.STAFF).locations.set(
        [locations[0][0]]
    )

    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        try:
            # Foreign-key triggers off while loading rows that are consistent by construction.
            cursor.execute("SET session_replication_role = replica")
        except Exception:  # not a superuser: load with the triggers on, only slower
            raw.rollback()
    # Indexes that back no constraint go while the rows go in, and are built again afterwards in
    # one sorted pass each (how a bulk load is done: several times faster than growing ~35
    # indexes row by row).
    rebuild = _drop_secondary_indexes(raw, BULK_TABLES)
    raw.commit()

    patient_columns = _Columns(
        "ehr_sync_patient",
        ["id", "organization_id", "first_name", "last_name", "date_of_birth", "email", "mobile_phone",
         "preferred_language", "sms_consent", "sms_consent_at", "external_ehr_id", "created_at", "updated_at"],
    )
    patient_base = _max_id("ehr_sync_patient")
    patient_ids: list[range] = []
    rows = []
    first_id = patient_base + 1
    for index, organization in enumerate(organizations):
        count = round(PATIENT_COUNT * ORGANIZATION_SHARES[index])
        patient_ids.append(range(first_id, first_id + count))
        for offset in range(count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            spanish = rng.random() < 0.15
            created = now - timedelta(days=DAYS + rng.randrange(0, 365))
            rows.append(
                (
                    first_id + offset, organization.pk, first, last,
                    date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80)),
                    f"p{first_id + offset}@mail.example" if rng.random() < 0.85 else "",
                    f"+1217{first_id + offset:07d}"[-12:] if rng.random() < 0.8 else "",
                    "es" if spanish else "en", False, None,
                    f"B{index + 1}-{offset + 1:07d}", created, created,
                )
            )
        _copy(raw, patient_columns, rows)
        rows.clear()
        first_id += count
    log(f"  patients: {PATIENT_COUNT:,} ({time.monotonic() - started:.0f} s)")

    request_columns = _Columns(
        "transactions_paymentrequest",
        ["id", "organization_id", "public_id", "patient_id", "location_id", "kind", "billing_item", "amount_cents",
         "currency", "note", "status", "expires_at", "created_by_id", "created_at", "last_sent_at", "paid_at",
         "failed_verification_count"],
    )
    transaction_columns = _Columns(
        "transactions_transaction",
        ["id", "organization_id", "payment_request_id", "patient_id", "location_id", "kind", "billing_item",
         "amount_cents", "currency", "vendor", "gateway_checkout_id", "gateway_checkout_url",
         "gateway_checkout_expires_at", "gateway_charge_id", "authorization_code", "card_brand", "card_last4",
         "status", "charged_cents", "refunded_cents", "disputed_cents", "fee_cents", "last_error",
         "has_unresolved_problems", "created_at", "paid_at", "updated_at"],
    )
    refund_columns = _Columns(
        "transactions_refund",
        ["id", "organization_id", "transaction_id", "amount_cents", "currency", "reason", "status",
         "idempotency_key", "gateway_refund_id", "failure_message", "requested_by_id", "created_at", "updated_at"],
    )
    event_columns = _Columns(
        "transactions_transactionevent",
        ["organization_id", "transaction_id", "kind", "amount_cents", "currency", "refund_id", "actor_type",
         "actor_user_id", "gateway_reference", "gateway_event_id", "message", "idempotency_key", "created_at"],
    )
    audit_columns = _Columns(
        "lumapay_auditevent",
        ["organization_id", "action", "actor_type", "actor_user_id", "patient_id", "payment_request_id",
         "transaction_id", "changes", "ip_address", "created_at"],
    )

    transaction_id = _max_id("transactions_transaction")
    refund_id = _max_id("transactions_refund")
    request_id = _max_id("transactions_paymentrequest")
    first_transaction_id = transaction_id + 1
    location_weights = [weight for _, weight in LOCATIONS]
    statuses, status_weights = zip(*STATUSES)
    brands, brand_weights = zip(*BRANDS)
    kinds, kind_weights = ("copay", "balance", "other"), (55, 35, 10)
    start_day = now - timedelta(days=DAYS)
    # Growth: a clinic takes three times as many payments at the end of the two years as at the start.
    day_weights = [1 + 2 * day / DAYS for day in range(DAYS)]
    scale = TRANSACTION_COUNT / sum(day_weights)
    per_day = [int(weight * scale) for weight in day_weights]
    per_day[-1] += TRANSACTION_COUNT - sum(per_day)
    org_range = range(ORGANIZATION_COUNT)

    requests, transactions, refunds, events, audits = [], [], [], [], []
    counts = {"events": 0, "requests": 0, "audits": 0}

    def flush():
        _copy(raw, request_columns, requests)
        _copy(raw, transaction_columns, transactions)
        _copy(raw, refund_columns, refunds)
        _copy(raw, event_columns, events)
        _copy(raw, audit_columns, audits)
        counts["events"] += len(events)
        counts["requests"] += len(requests)
        counts["audits"] += len(audits)
        for rows_ in (requests, transactions, refunds, events, audits):
            rows_.clear()

    def request_only(org_index, at):
        """A request that no transaction stands behind: still open, expired or cancelled."""
        nonlocal request_id
        request_id += 1
        organization = organizations[org_index]
        kind = rng.choices(kinds, weights=kind_weights)[0]
        status = rng.choices(("expired", "cancelled", "open"), weights=(60, 25, 15))[0]
        expires = at + timedelta(days=14)
        requests.append(
            (request_id, organization.pk, uuid.UUID(int=(0xBE4D << 112) | request_id), rng.choice(patient_ids[org_index]),
             rng.choices(locations[org_index], weights=location_weights)[0].pk, kind, rng.choice(BILLING_ITEMS[kind]),
             rng.choice(COPAYS), "usd", "", status if expires < now or status != "expired" else "open", expires,
             managers[org_index].pk, at, at, None, 0)
        )
        audits.append((organization.pk, "payment_request.sent", "staff", managers[org_index].pk, None, request_id,
                       None, '{"channels": ["email", "sms"]}', None, at))

    for day, count in enumerate(per_day):
        day_start = start_day + timedelta(days=day)
        # Clinic hours in the US: 12:00 to 24:00 UTC.
        moments = sorted(
            day_start.replace(hour=12, minute=0, second=0) + timedelta(microseconds=rng.randrange(0, 12 * 3600 * 10**6))
            for _ in range(count)
        )
        for created in moments:
            if created >= now:
                created = now - timedelta(seconds=1)
            transaction_id += 1
            org_index = rng.choices(org_range, weights=ORGANIZATION_SHARES)[0]
            organization = organizations[org_index]
            manager = managers[org_index].pk
            location = rng.choices(locations[org_index], weights=location_weights)[0]
            patient_id = rng.choice(patient_ids[org_index])
            kind = rng.choices(kinds, weights=kind_weights)[0]
            if kind == "copay":
                amount = rng.choice(COPAYS)
            elif kind == "balance":
                amount = rng.randrange(40_00, 650_00, 25)
            else:
                amount = rng.choice(OTHER_AMOUNTS)
            billing_item = rng.choice(BILLING_ITEMS[kind])
            # Most payments go through the organization's gateway; some predate a switch.
            vendor = organization.payment_gateway if rng.random() < 0.9 else (
                "sandbox" if organization.payment_gateway == "stripe" else "stripe"
            )
            status = rng.choices(statuses, weights=status_weights)[0]
            card_on_file = status in ("authorized", "released") or rng.random() < CARD_ON_FILE_SHARE
            checkout_id = "" if card_on_file else f"cs_bench_{transaction_id:09d}"
            key = 0

            def event(kind_, amount_, at, *, actor="gateway", actor_user=None, refund=None, reference="", message=""):
                nonlocal key
                key += 1
                events.append(
                    (organization.pk, transaction_id, kind_, amount_, "usd", refund, actor, actor_user,
                     reference, "", message, f"bench:{key}", at)
                )

            def audit(action, at, *, actor="system", actor_user=None, changes="{}", ip=None, on_transaction=True):
                audits.append((organization.pk, action, actor, actor_user, patient_id, payment_request_id,
                               transaction_id if on_transaction else None, changes, ip, at))

            payment_request_id = None
            ip = f"198.51.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            if card_on_file:
                event("charge_requested", amount, created, actor="staff", actor_user=manager)
            else:
                # The request was sent minutes to days before the patient opened the link.
                request_id += 1
                payment_request_id = request_id
                sent_at = created - timedelta(minutes=rng.randrange(2, 60 * 24 * 6))
                audit("payment_request.sent", sent_at, actor="staff", actor_user=manager,
                      changes='{"channels": ["email", "sms"]}', on_transaction=False)
                audit("payment_request.delivery_sent", sent_at + timedelta(seconds=3), changes='{"channel": "email"}',
                      on_transaction=False)
                audit("pay_link.opened", created - timedelta(seconds=rng.randrange(20, 120)), actor="patient", ip=ip,
                      on_transaction=False)
                audit("checkout.started", created, actor="patient", ip=ip, changes=f'{{"checkout_id": "{checkout_id}"}}')
                event("charge_requested", amount, created, actor="patient", reference=checkout_id)
            brand = last4 = charge_id = authorization = last_error = ""
            paid_at = None
            charged = refunded = disputed = fee = 0
            unresolved = False
            if status != "pending":
                brand = rng.choices(brands, weights=brand_weights)[0]
                last4 = f"{rng.randrange(0, 10_000):04d}"
                attempt_at = created + timedelta(seconds=rng.randrange(40, 180))
                if status in ("authorized", "released"):
                    event("charge_authorized", amount, attempt_at, reference=f"pi_bench_{transaction_id}")
                    if status == "released":
                        event("authorization_released", amount, attempt_at + timedelta(days=rng.randrange(1, 5)),
                              actor="system", reference=f"pi_bench_{transaction_id}")
                elif status == "failed" or rng.random() < 0.05:
                    # A declined card; for a payment that went through, a first attempt that failed
                    # (resolved by the payment: history, not a problem).
                    decline = rng.choice(DECLINES)
                    event("charge_failed", 0, attempt_at, reference=f"ch_bench_{transaction_id}_0", message=decline)
                    attempt_at += timedelta(seconds=rng.randrange(30, 300))
                    if status == "failed":
                        last_error, unresolved = decline, True
                if status not in ("failed", "authorized", "released"):
                    charge_id = f"ch_bench_{transaction_id}"
                    authorization = f"{rng.randrange(0, 10**6):06d}"
                    paid_at = attempt_at
                    charged = amount
                    fee = (amount * 29 + 500) // 1000 + 30
                    event("charge_succeeded", amount, paid_at, reference=charge_id)
                    if payment_request_id is not None:
                        audit("receipt.sent", paid_at + timedelta(seconds=5), changes='{"channel": "email"}')
                    plans = []
                    if status == "partially_refunded":
                        plans = [(max(100, amount * rng.choice([20, 25, 40, 50, 60]) // 100), True)]
                    elif status == "refunded":
                        if amount >= 2000 and rng.random() < 0.3:
                            plans = [(amount // 2, True), (amount - amount // 2, True)]
                        else:
                            plans = [(amount, True)]
                    elif status == "succeeded" and rng.random() < 0.04:
                        plans = [(amount, False)]
                    refund_at = paid_at
                    for refund_amount, succeeded in plans:
                        refund_id += 1
                        refund_at = min(refund_at + timedelta(days=rng.randrange(1, 12), minutes=rng.randrange(0, 480)), now)
                        reason = rng.choice(REFUND_REASONS)
                        failure = "" if succeeded else REFUND_FAILURE
                        refunds.append(
                            (refund_id, organization.pk, transaction_id, refund_amount, "usd", reason,
                             "succeeded" if succeeded else "failed", uuid.UUID(int=(0xBE4C << 112) | refund_id),
                             f"re_bench_{refund_id}", failure, manager, refund_at, refund_at)
                        )
                        event("refund_requested", refund_amount, refund_at, actor="staff", actor_user=manager,
                              refund=refund_id, message=reason)
                        audit("refund.requested", refund_at, actor="staff", actor_user=manager,
                              changes=f'{{"refund_id": {refund_id}, "amount_cents": {refund_amount}}}')
                        event("refund_succeeded" if succeeded else "refund_failed", refund_amount,
                              refund_at + timedelta(seconds=2), refund=refund_id, reference=f"re_bench_{refund_id}",
                              message=failure)
                        if succeeded:
                            refunded += refund_amount
                        else:
                            last_error, unresolved = failure, True
                    if status in ("disputed", "dispute_lost"):
                        opened = min(paid_at + timedelta(days=rng.randrange(10, 60)), now)
                        reference = f"dp_bench_{transaction_id}"
                        event("dispute_opened", amount, opened, reference=reference, message="fraudulent")
                        disputed = amount
                        if status == "dispute_lost":
                            event("dispute_lost", amount, min(opened + timedelta(days=30), now), reference=reference)
            if payment_request_id is not None:
                expires = created + timedelta(days=14)
                requests.append(
                    (payment_request_id, organization.pk, uuid.UUID(int=(0xBE4D << 112) | payment_request_id),
                     patient_id, location.pk, kind, billing_item, amount, "usd", "",
                     "paid" if charged else ("expired" if expires < now else "open"), expires, manager,
                     sent_at, sent_at, paid_at, 0)
                )
                if rng.random() < 0.1:
                    request_only(org_index, sent_at)
            transactions.append(
                (transaction_id, organization.pk, payment_request_id, patient_id, location.pk, kind, billing_item,
                 amount, "usd", vendor, checkout_id, "", None, charge_id, authorization, brand, last4, status,
                 charged, refunded, disputed, fee, last_error, unresolved, created, paid_at, paid_at or created)
            )
            if len(transactions) >= CHUNK:
                flush()
        if day % 73 == 72:
            log(f"  transactions: {transaction_id - first_transaction_id + 1:,} ({time.monotonic() - started:.0f} s)")
    flush()

    tables = BULK_TABLES
    with raw.cursor() as cursor:
        cursor.execute("SET session_replication_role = DEFAULT")
        log(f"  rows in at {time.monotonic() - started:.0f} s; building {len(rebuild)} indexes …")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for statement in rebuild:
            cursor.execute(statement)
        # The dashboard's daily totals: their trigger did not fire while the triggers were off.
        cursor.execute("SELECT transactions_daily_total_rebuild(id) FROM org_profile_organization")
        for table in tables:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    raw.autocommit = True
    with raw.cursor() as cursor:
        log(f"  loaded in {time.monotonic() - started:.0f} s; VACUUM ANALYZE …")
        for table in (*tables, *DAILY_TOTAL_TABLES):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        seconds = time.monotonic() - started
        cursor.execute("DROP TABLE IF EXISTS benchmark_dataset")
        cursor.execute(
            "CREATE TABLE benchmark_dataset (version int, generated_at timestamptz, transactions int, "
            "events int, patients int, seconds float, payment_requests int, audit_events int)"
        )
        cursor.execute(
            "INSERT INTO benchmark_dataset VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [DATASET_VERSION, now, TRANSACTION_COUNT, counts["events"], PATIENT_COUNT, seconds, counts["requests"],
             counts["audits"]],
        )
    return dataset_loaded()


# The dashboard's daily totals: rebuilt after COPY, and by migrations that change them.
DAILY_TOTAL_TABLES = (
    "transactions_dailytotal", "transactions_dailycardtotal", "transactions_dailyamounttotal", "transactions_dailypaidtotal"
)
BULK_TABLES = (
    "ehr_sync_patient", "transactions_paymentrequest", "transactions_transaction", "transactions_refund",
    "transactions_transactionevent", "lumapay_auditevent",
)


def _drop_secondary_indexes(raw, tables) -> list[str]:
    """Drop the indexes of ``tables`` that no constraint uses; return the statements that build them again."""
    with raw.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
              FROM pg_index i
             WHERE i.indrelid = ANY(%s::regclass[])
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            [list(tables)],
        )
        found = cursor.fetchall()
        for name, _ in found:
            cursor.execute(f"DROP INDEX {name}")
    return [definition for _, definition in found]


def _max_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
        return cursor.fetchone()[0]
