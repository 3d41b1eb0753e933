"""Row-level security on every table that carries an organization (lumapay/tenant_rls.py says why
and how): the app's role ``lumapay_app``, its grants, and one policy per tenant table.

A table added later with an ``organization`` gets ``tenant_policy_sql`` in its own migration;
tests/test_row_level_security.py fails until it does.
"""

from django.db import migrations

from lumapay.tenant_rls import APP_ROLE_REVERSE_SQL, APP_ROLE_SQL, tenant_policy_reverse_sql, tenant_policy_sql

TENANT_TABLES = [
    "lumapay_auditevent",
    "lumapay_phiaccess",
    "lumapay_phiaccesspatient",
    "org_profile_location",
    "org_profile_membership",
    "ehr_sync_patient",
    "ehr_sync_appointment",
    "ehr_sync_balance",
    "transactions_sandboxcheckoutsession",
    "transactions_paymentrequest",
    "transactions_paymentrequestdelivery",
    "transactions_transaction",
    "transactions_dailytotal",
    "transactions_dailycardtotal",
    "transactions_dailyamounttotal",
    "transactions_refund",
    "transactions_savedcard",
    "transactions_dispute",
    "transactions_transactionevent",
    "transactions_gatewayevent",
    "transactions_transactionexport",
]


class Migration(migrations.Migration):
    dependencies = [
        ("lumapay", "0010_audit_actions_after_issue_9_merges"),
        ("org_profile", "0007_organization_mfa_required"),
        ("ehr_sync", "0004_patient_email_and_phone_search_indexes"),
        ("transactions", "0017_sandbox_checkout_locale"),
    ]

    operations = [
        migrations.RunSQL(APP_ROLE_SQL, APP_ROLE_REVERSE_SQL),
        *(migrations.RunSQL(tenant_policy_sql(table), tenant_policy_reverse_sql(table)) for table in TENANT_TABLES),
    ]
