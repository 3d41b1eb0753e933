"""Indexes for every dashboard filter at a million transactions (benchmarks/dashboard.py measures
each), beside the daily totals (0010), which answer the date, status, kind, location and errors
filters and the unfiltered page:

- ``has_unresolved_problems`` joins the INCLUDE of the two covering indexes (organization, date)
  and (organization, location, date): the "has errors" filter's pages read no heap.
- The filters the daily totals cannot answer get an index whose INCLUDE holds what the totals,
  chart and the other filters read (``SUMMARY_COLUMNS``), so their totals are index-only scans of
  just the matching entries instead of heap fetches: the billing item (its index gains the
  INCLUDE), the amount range (organization, amount), and the patient filter (patient, date), which
  reads the transactions of the patients the search found (``q=smith``: 16,700 heap fetches took
  ~300 ms on a busy machine). The last replaces the bare foreign-key index on ``patient_id``.

Built CONCURRENTLY (so the migration is not atomic) as in 0005: writes go on while they build.
The two covering indexes are dropped and built again under the same names; the dashboard falls back
to the other indexes for the seconds in between.
"""

import django.db.models.deletion
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('ehr_sync', '0003_patient_search_without_accents'),
        ('org_profile', '0003_stripe_connect'),
        ('transactions', '0010_dashboard_daily_totals'),
    ]

    operations = [
        RemoveIndexConcurrently(
            model_name='transaction',
            name='transaction_org_created_cover',
        ),
        RemoveIndexConcurrently(
            model_name='transaction',
            name='transaction_org_location_cover',
        ),
        RemoveIndexConcurrently(
            model_name='transaction',
            name='transaction_org_billing_item',
        ),
        AddIndexConcurrently(
            model_name='transaction',
            index=models.Index(fields=['organization', '-created_at', '-id'], include=('location', 'status', 'kind', 'amount_cents', 'charged_cents', 'refunded_cents', 'paid_at', 'vendor', 'card_brand', 'has_unresolved_problems'), name='transaction_org_created_cover'),
        ),
        AddIndexConcurrently(
            model_name='transaction',
            index=models.Index(fields=['organization', 'location', '-created_at', '-id'], include=('status', 'kind', 'amount_cents', 'charged_cents', 'refunded_cents', 'paid_at', 'vendor', 'card_brand', 'has_unresolved_problems'), name='transaction_org_location_cover'),
        ),
        AddIndexConcurrently(
            model_name='transaction',
            index=models.Index(fields=['organization', 'billing_item', '-created_at', '-id'], include=('location', 'paid_at', 'status', 'kind', 'amount_cents', 'charged_cents', 'refunded_cents', 'vendor', 'card_brand', 'has_unresolved_problems'), name='transaction_org_billing_cover'),
        ),
        AddIndexConcurrently(
            model_name='transaction',
            index=models.Index(fields=['organization', 'amount_cents'], include=('location', 'created_at', 'paid_at', 'status', 'kind', 'charged_cents', 'refunded_cents', 'vendor', 'card_brand', 'has_unresolved_problems'), name='transaction_org_amount_cover'),
        ),
        AddIndexConcurrently(
            model_name='transaction',
            index=models.Index(fields=['patient', '-created_at', '-id'], include=('organization', 'location', 'paid_at', 'status', 'kind', 'amount_cents', 'charged_cents', 'refunded_cents', 'vendor', 'card_brand', 'has_unresolved_problems'), name='transaction_patient_cover'),
        ),
        migrations.AlterField(
            model_name='transaction',
            name='patient',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='transactions', to='ehr_sync.patient'),
        ),
    ]
