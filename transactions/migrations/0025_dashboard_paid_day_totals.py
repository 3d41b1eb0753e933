"""The dashboard's totals per local day paid alone (``DailyPaidTotal``), kept by the same trigger as
the other daily totals (0010, 0012).

Why: the unfiltered dashboard (and the paid dates alone) summed one organization's
``DailyAmountTotal`` cells, its fewest until now: 14,200 for the throughput benchmark's
organization, a hash aggregate of ~10 ms of the database's CPU on every page, on the two cores the
web workers share. Per day paid there are about 730 cells for two years.

The trigger function gains a fourth section, written last, so the cells are still taken in one
order (the tables in order, each table's two cells in key order); the rebuild function gains the
new table. The new cells are filled from the amount cells, which hold the same set per band.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

from lumapay.tenant_rls import tenant_policy_reverse_sql, tenant_policy_sql

TOTALS_0012 = importlib.import_module("transactions.migrations.0012_dashboard_amount_and_kind_totals")

CELL = TOTALS_0012.CELL
CARD_CELL = TOTALS_0012.CARD_CELL
AMOUNT_CELL = TOTALS_0012.AMOUNT_CELL
PAID_CELL = "organization_id, paid_on"
MEASURES = TOTALS_0012.MEASURES
_section = TOTALS_0012._section


def _apply_function(*, with_paid_day: bool) -> str:
    paid_day = _section(
        "OLD.organization_id, old_paid",
        "NEW.organization_id, new_paid",
        "transactions_daily_paid_total_add",
    ) if with_paid_day else ""
    return f"""
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
    {"-- By day paid alone." if with_paid_day else ""}
    {paid_day}
    RETURN NULL;
END
$$;
"""


def _rebuild_function(*, with_paid_day: bool) -> str:
    paid_day = f"""
    DELETE FROM transactions_dailypaidtotal WHERE organization_id = p_organization;
    INSERT INTO transactions_dailypaidtotal ({PAID_CELL}, {MEASURES})
    SELECT t.organization_id, (t.paid_at AT TIME ZONE o.timezone)::date,
           count(*), sum(t.charged_cents), sum(t.refunded_cents), count(*) FILTER (WHERE t.charged_cents > 0)
      FROM transactions_transaction t
      JOIN org_profile_organization o ON o.id = t.organization_id
     WHERE t.organization_id = p_organization
     GROUP BY 1, 2;""" if with_paid_day else ""
    return f"""
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
     GROUP BY 1, 2, 3, 4;{paid_day}
$$;
"""


SQL = f"""
CREATE FUNCTION transactions_daily_paid_total_add(
    t transactions_transaction, p_created_on date, p_paid_on date, p_sign integer
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO transactions_dailypaidtotal AS cell ({PAID_CELL}, {MEASURES})
    VALUES (t.organization_id, p_paid_on,
            p_sign, p_sign * t.charged_cents, p_sign * t.refunded_cents, p_sign * (t.charged_cents > 0)::int)
    ON CONFLICT ({PAID_CELL}) DO UPDATE SET {TOTALS_0012.UPSERT_MEASURES}
$$;
{_apply_function(with_paid_day=True)}
{_rebuild_function(with_paid_day=True)}
-- The existing transactions, from the amount cells (the same set, per band).
INSERT INTO transactions_dailypaidtotal ({PAID_CELL}, {MEASURES})
SELECT organization_id, paid_on, sum(transactions), sum(charged_cents), sum(refunded_cents), sum(payments)
  FROM transactions_dailyamounttotal
 GROUP BY 1, 2
HAVING sum(transactions) <> 0;
"""

REVERSE_SQL = f"""
{_apply_function(with_paid_day=False)}
{_rebuild_function(with_paid_day=False)}
DROP FUNCTION IF EXISTS transactions_daily_paid_total_add(transactions_transaction, date, date, integer);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('org_profile', '0009_organization_profile'),
        ('transactions', '0024_form_links_through_the_patients_outbox'),
    ]

    operations = [
        migrations.CreateModel(
            name='DailyPaidTotal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('paid_on', models.DateField(null=True)),
                ('transactions', models.IntegerField()),
                ('charged_cents', models.BigIntegerField()),
                ('refunded_cents', models.BigIntegerField()),
                ('payments', models.IntegerField(help_text='transactions with money charged')),
                ('organization', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='org_profile.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'paid_on'), include=('transactions', 'charged_cents', 'refunded_cents', 'payments'), name='daily_paid_total_cell', nulls_distinct=False)],
            },
        ),
        migrations.RunSQL(
            tenant_policy_sql("transactions_dailypaidtotal"), tenant_policy_reverse_sql("transactions_dailypaidtotal")
        ),
        migrations.RunSQL(SQL, REVERSE_SQL),
    ]
