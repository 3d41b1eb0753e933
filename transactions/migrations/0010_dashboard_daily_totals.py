"""The dashboard's daily totals (``DailyTotal``, ``DailyCardTotal``), kept exact by triggers.

Why: the totals and chart read every transaction of the filtered set. For an organization with
500,000 transactions that is 500,000 index entries to sum on every unfiltered page (~200 ms and
more on the benchmark machine; ~80 ms of a 200,000-transaction organization's 122-155 ms page
before). Summed ahead per organization, local day created, local day paid, status and unresolved
problems, and either vendor and card brand (28,800 cells for that organization) or location and
kind (68,800 cells), the unfiltered page and the date, status, errors, location, kind, vendor and
card-brand filters read a few thousand to a few tens of thousands of cells instead.

Why triggers rather than code in ``transaction_recalculate``: the cells must move with every write
to a transaction's created or paid time, status, kind, location, money or problems, including the
writes that do not go through the ledger (a checkout opened, the seed, the admin, data fixes in a
migration). A trigger runs in the same database transaction as the write, so the totals are never
off, whoever wrote. When a write moves a row between two cells, the trigger updates them in key
order, so two writes never wait on each other's cells in opposite orders.

``transactions_daily_total_rebuild(organization_id)`` recomputes an organization's cells from its
transactions: run here for existing data, by the trigger on ``org_profile_organization`` when an
organization's time zone changes (its local days move), and by the benchmark loader after COPY
(which loads with triggers off).
"""

import django.db.models.deletion
from django.db import migrations, models


CELL = "organization_id, created_on, location_id, paid_on, status, kind, has_unresolved_problems"
CARD_CELL = "organization_id, created_on, paid_on, status, vendor, card_brand, has_unresolved_problems"
MEASURES = "transactions, charged_cents, refunded_cents, payments"
UPSERT_MEASURES = """
        transactions = cell.transactions + EXCLUDED.transactions,
        charged_cents = cell.charged_cents + EXCLUDED.charged_cents,
        refunded_cents = cell.refunded_cents + EXCLUDED.refunded_cents,
        payments = cell.payments + EXCLUDED.payments"""

SQL = f"""
CREATE FUNCTION transactions_daily_total_add(
    t transactions_transaction, p_created_on date, p_paid_on date, p_sign integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO transactions_dailytotal AS cell ({CELL}, {MEASURES})
    VALUES (t.organization_id, p_created_on, t.location_id, p_paid_on, t.status, t.kind, t.has_unresolved_problems,
            p_sign, p_sign * t.charged_cents, p_sign * t.refunded_cents, p_sign * (t.charged_cents > 0)::int)
    ON CONFLICT ({CELL}) DO UPDATE SET {UPSERT_MEASURES}
$$;

CREATE FUNCTION transactions_daily_card_total_add(
    t transactions_transaction, p_created_on date, p_paid_on date, p_sign integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO transactions_dailycardtotal AS cell ({CARD_CELL}, {MEASURES})
    VALUES (t.organization_id, p_created_on, p_paid_on, t.status, t.vendor, t.card_brand, t.has_unresolved_problems,
            p_sign, p_sign * t.charged_cents, p_sign * t.refunded_cents, p_sign * (t.charged_cents > 0)::int)
    ON CONFLICT ({CARD_CELL}) DO UPDATE SET {UPSERT_MEASURES}
$$;

-- Move a transaction from its old cell to its new one in both tables: take OLD out, put NEW in.
-- Within each table the two cells are written in key order, and the first table before the
-- second, so two writes never wait on each other's cells in opposite orders. When OLD and NEW
-- fall in the same cell, the two writes go to the same row, one after the other.
CREATE FUNCTION transactions_daily_total_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    old_created date;
    old_paid date;
    new_created date;
    new_paid date;
    old_key text;
    new_key text;
BEGIN
    IF TG_OP = 'UPDATE' AND (
        OLD.organization_id, OLD.location_id, OLD.created_at, OLD.paid_at, OLD.status, OLD.kind, OLD.vendor,
        OLD.card_brand, OLD.has_unresolved_problems, OLD.charged_cents, OLD.refunded_cents
    ) IS NOT DISTINCT FROM (
        NEW.organization_id, NEW.location_id, NEW.created_at, NEW.paid_at, NEW.status, NEW.kind, NEW.vendor,
        NEW.card_brand, NEW.has_unresolved_problems, NEW.charged_cents, NEW.refunded_cents
    ) THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        SELECT timezone INTO zone FROM org_profile_organization WHERE id = OLD.organization_id;
        old_created := (OLD.created_at AT TIME ZONE zone)::date;
        old_paid := (OLD.paid_at AT TIME ZONE zone)::date;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT timezone INTO zone FROM org_profile_organization WHERE id = NEW.organization_id;
        new_created := (NEW.created_at AT TIME ZONE zone)::date;
        new_paid := (NEW.paid_at AT TIME ZONE zone)::date;
    END IF;

    -- By location and kind.
    IF TG_OP <> 'INSERT' THEN
        old_key := concat_ws('|', OLD.organization_id, old_created, OLD.location_id, old_paid, OLD.status,
                             OLD.kind, OLD.has_unresolved_problems);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_key := concat_ws('|', NEW.organization_id, new_created, NEW.location_id, new_paid, NEW.status,
                             NEW.kind, NEW.has_unresolved_problems);
    END IF;
    IF new_key IS NOT NULL AND (old_key IS NULL OR new_key < old_key) THEN
        PERFORM transactions_daily_total_add(NEW, new_created, new_paid, 1);
        new_key := NULL;
    END IF;
    IF old_key IS NOT NULL THEN
        PERFORM transactions_daily_total_add(OLD, old_created, old_paid, -1);
    END IF;
    IF new_key IS NOT NULL THEN
        PERFORM transactions_daily_total_add(NEW, new_created, new_paid, 1);
    END IF;

    -- By vendor and card brand.
    old_key := NULL;
    new_key := NULL;
    IF TG_OP <> 'INSERT' THEN
        old_key := concat_ws('|', OLD.organization_id, old_created, old_paid, OLD.status, OLD.vendor,
                             OLD.card_brand, OLD.has_unresolved_problems);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_key := concat_ws('|', NEW.organization_id, new_created, new_paid, NEW.status, NEW.vendor,
                             NEW.card_brand, NEW.has_unresolved_problems);
    END IF;
    IF new_key IS NOT NULL AND (old_key IS NULL OR new_key < old_key) THEN
        PERFORM transactions_daily_card_total_add(NEW, new_created, new_paid, 1);
        new_key := NULL;
    END IF;
    IF old_key IS NOT NULL THEN
        PERFORM transactions_daily_card_total_add(OLD, old_created, old_paid, -1);
    END IF;
    IF new_key IS NOT NULL THEN
        PERFORM transactions_daily_card_total_add(NEW, new_created, new_paid, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transaction_daily_total
    AFTER INSERT OR UPDATE OR DELETE ON transactions_transaction
    FOR EACH ROW EXECUTE FUNCTION transactions_daily_total_apply();

CREATE FUNCTION transactions_daily_total_rebuild(p_organization bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM transactions_dailytotal WHERE organization_id = p_organization;
    INSERT INTO transactions_dailytotal ({CELL}, {MEASURES})
    SELECT t.organization_id, (t.created_at AT TIME ZONE o.timezone)::date, t.location_id,
           (t.paid_at AT TIME ZONE o.timezone)::date, t.status, t.kind, t.has_unresolved_problems,
           count(*), sum(t.charged_cents), sum(t.refunded_cents), count(*) FILTER (WHERE t.charged_cents > 0)
      FROM transactions_transaction t
      JOIN org_profile_organization o ON o.id = t.organization_id
     WHERE t.organization_id = p_organization
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    DELETE FROM transactions_dailycardtotal WHERE organization_id = p_organization;
    INSERT INTO transactions_dailycardtotal ({CARD_CELL}, {MEASURES})
    SELECT t.organization_id, (t.created_at AT TIME ZONE o.timezone)::date, (t.paid_at AT TIME ZONE o.timezone)::date,
           t.status, t.vendor, t.card_brand, t.has_unresolved_problems,
           count(*), sum(t.charged_cents), sum(t.refunded_cents), count(*) FILTER (WHERE t.charged_cents > 0)
      FROM transactions_transaction t
      JOIN org_profile_organization o ON o.id = t.organization_id
     WHERE t.organization_id = p_organization
     GROUP BY 1, 2, 3, 4, 5, 6, 7
$$;

CREATE FUNCTION transactions_daily_total_zone_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM transactions_daily_total_rebuild(NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER organization_daily_total_zone
    AFTER UPDATE OF timezone ON org_profile_organization
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION transactions_daily_total_zone_changed();

SELECT transactions_daily_total_rebuild(id) FROM org_profile_organization;
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS organization_daily_total_zone ON org_profile_organization;
DROP TRIGGER IF EXISTS transaction_daily_total ON transactions_transaction;
DROP FUNCTION IF EXISTS transactions_daily_total_zone_changed();
DROP FUNCTION IF EXISTS transactions_daily_total_rebuild(bigint);
DROP FUNCTION IF EXISTS transactions_daily_total_apply();
DROP FUNCTION IF EXISTS transactions_daily_card_total_add(transactions_transaction, date, date, integer);
DROP FUNCTION IF EXISTS transactions_daily_total_add(transactions_transaction, date, date, integer);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('org_profile', '0003_stripe_connect'),
        ('transactions', '0009_transaction_has_unresolved_problems'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_on', models.DateField()),
                ('paid_on', models.DateField(null=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('partially_refunded', 'Partially refunded'), ('refunded', 'Refunded'), ('disputed', 'Disputed'), ('dispute_lost', 'Dispute lost'), ('authorized', 'Authorized'), ('released', 'Authorization released')], max_length=20)),
                ('kind', models.CharField(choices=[('copay', 'Copay'), ('balance', 'Balance'), ('other', 'Other')], max_length=20)),
                ('has_unresolved_problems', models.BooleanField()),
                ('transactions', models.IntegerField()),
                ('charged_cents', models.BigIntegerField()),
                ('refunded_cents', models.BigIntegerField()),
                ('payments', models.IntegerField(help_text='transactions with money charged')),
                ('location', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='org_profile.location')),
                ('organization', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='org_profile.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'location', 'kind', 'created_on', 'paid_on', 'status', 'has_unresolved_problems'), name='daily_total_cell', nulls_distinct=False, include=('transactions', 'charged_cents', 'refunded_cents', 'payments'))],
            },
        ),
        migrations.CreateModel(
            name="DailyCardTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_on", models.DateField()),
                ("paid_on", models.DateField(null=True)),
                ("status", models.CharField(choices=[('pending', 'Pending'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('partially_refunded', 'Partially refunded'), ('refunded', 'Refunded'), ('disputed', 'Disputed'), ('dispute_lost', 'Dispute lost'), ('authorized', 'Authorized'), ('released', 'Authorization released')], max_length=20)),
                ("vendor", models.CharField(max_length=20)),
                ("card_brand", models.CharField(max_length=20)),
                ("has_unresolved_problems", models.BooleanField()),
                ("transactions", models.IntegerField()),
                ("charged_cents", models.BigIntegerField()),
                ("refunded_cents", models.BigIntegerField()),
                ("payments", models.IntegerField(help_text="transactions with money charged")),
                ("organization", models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="org_profile.organization")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("organization", "created_on", "paid_on", "status", "vendor", "card_brand", "has_unresolved_problems"), include=("transactions", "charged_cents", "refunded_cents", "payments"), name="daily_card_total_cell", nulls_distinct=False)],
            },
        ),
        migrations.RunSQL(SQL, REVERSE_SQL),
    ]
