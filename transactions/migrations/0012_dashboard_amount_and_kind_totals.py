"""Two more sets of the dashboard's daily totals (see 0010), for the filters that still summed up to
every transaction of the organization:

- ``DailyCardTotal`` gains the kind: kind together with vendor or card brand (and dates, status,
  errors) reads cells instead of every transaction (the benchmark's "kind + vendor + card brand +
  paid" case summed 500,000 index entries to keep 64,000).
- ``DailyAmountTotal``: per local day paid and band of amounts (``transactions.models.amount_band``),
  for the amount filter alone or with the paid dates. A range takes the cells whose band lies
  inside it and reads the transactions only where a bound cuts a band, so the totals stay exact;
  "from $100" reads 4,400 cells instead of 158,000 transactions and "$20 to $30" 2,200 instead of
  104,000 (the benchmark's largest organization), and grouping cells by day needs no time-zone
  conversion per row.

The trigger function and the rebuild function of 0010 are replaced to keep the new columns and the
new table; every organization's cells are rebuilt.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models


DAILY_TOTALS_0010 = importlib.import_module("transactions.migrations.0010_dashboard_daily_totals")

CELL = "organization_id, created_on, location_id, paid_on, status, kind, has_unresolved_problems"
CARD_CELL = "organization_id, created_on, paid_on, status, kind, vendor, card_brand, has_unresolved_problems"
AMOUNT_CELL = "organization_id, amount_low, paid_on"
MEASURES = "transactions, charged_cents, refunded_cents, payments"
UPSERT_MEASURES = DAILY_TOTALS_0010.UPSERT_MEASURES


def _section(key_old: str, key_new: str, add: str) -> str:
    """Take OLD out of its cell and put NEW in, the two cells in key order (see 0010)."""
    return f"""
    old_key := NULL;
    new_key := NULL;
    IF TG_OP <> 'INSERT' THEN
        old_key := concat_ws('|', {key_old});
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_key := concat_ws('|', {key_new});
    END IF;
    IF new_key IS NOT NULL AND (old_key IS NULL OR new_key < old_key) THEN
        PERFORM {add}(NEW, new_created, new_paid, 1);
        new_key := NULL;
    END IF;
    IF old_key IS NOT NULL THEN
        PERFORM {add}(OLD, old_created, old_paid, -1);
    END IF;
    IF new_key IS NOT NULL THEN
        PERFORM {add}(NEW, new_created, new_paid, 1);
    END IF;"""


SQL = f"""
CREATE FUNCTION transactions_amount_band_low(cents bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN cents < 10000 AND cents % 100 = 0 THEN cents
        WHEN cents < 10000 THEN cents / 100 * 100 + 1
        WHEN cents < 100000 THEN cents / 10000 * 10000
        ELSE cents / 100000 * 100000
    END
$$;

CREATE FUNCTION transactions_amount_band_high(cents bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN cents < 10000 AND cents % 100 = 0 THEN cents
        WHEN cents < 10000 THEN cents / 100 * 100 + 99
        WHEN cents < 100000 THEN cents / 10000 * 10000 + 9999
        ELSE cents / 100000 * 100000 + 99999
    END
$$;

CREATE OR REPLACE FUNCTION transactions_daily_card_total_add(
    t transactions_transaction, p_created_on date, p_paid_on date, p_sign integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO transactions_dailycardtotal AS cell ({CARD_CELL}, {MEASURES})
    VALUES (t.organization_id, p_created_on, p_paid_on, t.status, t.kind, t.vendor, t.card_brand,
            t.has_unresolved_problems,
            p_sign, p_sign * t.charged_cents, p_sign * t.refunded_cents, p_sign * (t.charged_cents > 0)::int)
    ON CONFLICT ({CARD_CELL}) DO UPDATE SET {UPSERT_MEASURES}
$$;

CREATE FUNCTION transactions_daily_amount_total_add(
    t transactions_transaction, p_created_on date, p_paid_on date, p_sign integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO transactions_dailyamounttotal AS cell ({AMOUNT_CELL}, amount_high, {MEASURES})
    VALUES (t.organization_id, transactions_amount_band_low(t.amount_cents), p_paid_on,
            transactions_amount_band_high(t.amount_cents),
            p_sign, p_sign * t.charged_cents, p_sign * t.refunded_cents, p_sign * (t.charged_cents > 0)::int)
    ON CONFLICT ({AMOUNT_CELL}) DO UPDATE SET {UPSERT_MEASURES}
$$;

CREATE OR REPLACE FUNCTION transactions_daily_total_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
        OLD.card_brand, OLD.has_unresolved_problems, OLD.charged_cents, OLD.refunded_cents, OLD.amount_cents
    ) IS NOT DISTINCT FROM (
        NEW.organization_id, NEW.location_id, NEW.created_at, NEW.paid_at, NEW.status, NEW.kind, NEW.vendor,
        NEW.card_brand, NEW.has_unresolved_problems, NEW.charged_cents, NEW.refunded_cents, NEW.amount_cents
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
    {_section(
        "OLD.organization_id, old_created, OLD.location_id, old_paid, OLD.status, OLD.kind, OLD.has_unresolved_problems",
        "NEW.organization_id, new_created, NEW.location_id, new_paid, NEW.status, NEW.kind, NEW.has_unresolved_problems",
        "transactions_daily_total_add",
    )}
    -- By kind, vendor and card brand.
    {_section(
        "OLD.organization_id, old_created, old_paid, OLD.status, OLD.kind, OLD.vendor, OLD.card_brand, "
        "OLD.has_unresolved_problems",
        "NEW.organization_id, new_created, new_paid, NEW.status, NEW.kind, NEW.vendor, NEW.card_brand, "
        "NEW.has_unresolved_problems",
        "transactions_daily_card_total_add",
    )}
    -- By band of amounts.
    {_section(
        "OLD.organization_id, transactions_amount_band_low(OLD.amount_cents), old_paid",
        "NEW.organization_id, transactions_amount_band_low(NEW.amount_cents), new_paid",
        "transactions_daily_amount_total_add",
    )}
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION transactions_daily_total_rebuild(p_organization bigint) RETURNS void LANGUAGE sql AS $$
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
           t.status, t.kind, t.vendor, t.card_brand, t.has_unresolved_problems,
           count(*), sum(t.charged_cents), sum(t.refunded_cents), count(*) FILTER (WHERE t.charged_cents > 0)
      FROM transactions_transaction t
      JOIN org_profile_organization o ON o.id = t.organization_id
     WHERE t.organization_id = p_organization
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
    DELETE FROM transactions_dailyamounttotal WHERE organization_id = p_organization;
    INSERT INTO transactions_dailyamounttotal ({AMOUNT_CELL}, amount_high, {MEASURES})
    SELECT t.organization_id, transactions_amount_band_low(t.amount_cents), (t.paid_at AT TIME ZONE o.timezone)::date,
           transactions_amount_band_high(t.amount_cents),
           count(*), sum(t.charged_cents), sum(t.refunded_cents), count(*) FILTER (WHERE t.charged_cents > 0)
      FROM transactions_transaction t
      JOIN org_profile_organization o ON o.id = t.organization_id
     WHERE t.organization_id = p_organization
     GROUP BY 1, 2, 3, 4
$$;

SELECT transactions_daily_total_rebuild(id) FROM org_profile_organization;
"""

# Back to 0010's functions: dropped here, built again by the first operation's reverse, once the
# kind column and the amount table are gone.
REVERSE_SQL = DAILY_TOTALS_0010.REVERSE_SQL + """
DROP FUNCTION IF EXISTS transactions_daily_amount_total_add(transactions_transaction, date, date, integer);
DROP FUNCTION IF EXISTS transactions_amount_band_high(bigint);
DROP FUNCTION IF EXISTS transactions_amount_band_low(bigint);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('org_profile', '0003_stripe_connect'),
        ('transactions', '0011_dashboard_indexes_for_every_filter'),
    ]

    operations = [
        migrations.RunSQL(migrations.RunSQL.noop, DAILY_TOTALS_0010.SQL),
        migrations.CreateModel(
            name='DailyAmountTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount_low', models.BigIntegerField(help_text="the band's lowest amount in cents")),
                ('amount_high', models.BigIntegerField(help_text="the band's highest amount in cents")),
                ('paid_on', models.DateField(null=True)),
                ('transactions', models.IntegerField()),
                ('charged_cents', models.BigIntegerField()),
                ('refunded_cents', models.BigIntegerField()),
                ('payments', models.IntegerField(help_text='transactions with money charged')),
            ],
        ),
        migrations.RemoveConstraint(
            model_name='dailycardtotal',
            name='daily_card_total_cell',
        ),
        migrations.AddField(
            model_name='dailycardtotal',
            name='kind',
            field=models.CharField(choices=[('copay', 'Copay'), ('balance', 'Balance'), ('other', 'Other')], default='copay', max_length=20),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name='dailycardtotal',
            constraint=models.UniqueConstraint(fields=('organization', 'created_on', 'paid_on', 'status', 'kind', 'vendor', 'card_brand', 'has_unresolved_problems'), include=('transactions', 'charged_cents', 'refunded_cents', 'payments'), name='daily_card_total_cell', nulls_distinct=False),
        ),
        migrations.AddField(
            model_name='dailyamounttotal',
            name='organization',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='org_profile.organization'),
        ),
        migrations.AddConstraint(
            model_name='dailyamounttotal',
            constraint=models.UniqueConstraint(fields=('organization', 'amount_low', 'paid_on'), include=('amount_high', 'transactions', 'charged_cents', 'refunded_cents', 'payments'), name='daily_amount_total_cell', nulls_distinct=False),
        ),
        migrations.RunSQL(SQL, REVERSE_SQL),
    ]
