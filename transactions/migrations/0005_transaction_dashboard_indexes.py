"""Indexes for the dashboard's filters, totals, chart and export at a million transactions.

Written by hand (mirrored in ``Transaction.Meta.indexes`` and ``TransactionEvent.Meta.indexes``).
Measured on the benchmark data set (1,000,000 transactions, 2.3 million events, 5 organizations;
see benchmarks/):

- Every query is organization-first, so every index leads with ``organization_id``.
- The totals and the chart read every row of the filtered set. ``INCLUDE`` puts the columns they
  read and the common filters test (status, kind, amount, vendor, card brand, location, the
  amounts, paid_at) in the index, so they are index-only scans: a year of one location, 25,000
  rows, totals in ~35 ms instead of ~80 ms through the heap. Two such indexes: by date for an
  organization-wide view, and by location then date for a location filter and for sub-account
  users, who always see a set of locations. Their keys end in (created_at DESC, id DESC), the
  dashboard's order, so a keyset page is an index range of 26 entries at any depth.
- ``billing_item`` after the organization: the billing-item filter, and the loose index scan that
  lists an organization's distinct billing items in a few probes (2.5 s without it).
- ``paid_at`` (partial: unpaid rows have none) for the date-paid filter.
- On the ledger, a partial index holding only failure events (charge_failed, refund_failed): the
  "has errors" filter hashes one organization's failures from it (~40,000 entries) instead of
  reading 2.3 million events.
- No BRIN on created_at: the table is in created_at order, so a BRIN would be tiny, but the five
  organizations interleave in every block range; for "one location's last month" it read 1,811
  heap blocks and took 35 ms where the covering btree takes 4 ms with no heap access.

Built CONCURRENTLY (so the migration is not atomic): writes to transactions go on while the
indexes build, which takes seconds at a million rows and minutes at a hundred million.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("transactions", "0004_stripe_disputes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="transaction",
            index=models.Index(
                fields=["organization", "-created_at", "-id"],
                include=[
                    "location", "status", "kind", "amount_cents", "charged_cents", "refunded_cents", "paid_at",
                    "vendor", "card_brand",
                ],
                name="transaction_org_created_cover",
            ),
        ),
        AddIndexConcurrently(
            model_name="transaction",
            index=models.Index(
                fields=["organization", "location", "-created_at", "-id"],
                include=[
                    "status", "kind", "amount_cents", "charged_cents", "refunded_cents", "paid_at", "vendor",
                    "card_brand",
                ],
                name="transaction_org_location_cover",
            ),
        ),
        AddIndexConcurrently(
            model_name="transaction",
            index=models.Index(fields=["organization", "billing_item", "-created_at", "-id"], name="transaction_org_billing_item"),
        ),
        AddIndexConcurrently(
            model_name="transaction",
            index=models.Index(
                fields=["organization", "-paid_at"], condition=models.Q(paid_at__isnull=False), name="transaction_org_paid"
            ),
        ),
        AddIndexConcurrently(
            model_name="transactionevent",
            index=models.Index(
                fields=["organization", "transaction"],
                condition=models.Q(kind__in=["charge_failed", "refund_failed"]),
                name="transaction_event_failures",
            ),
        ),
    ]
