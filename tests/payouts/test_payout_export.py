"""The payouts CSV: exactly the filtered set, row by row; formula-safe text; the organization's
time zone; amounts as numbers; no patient data; audited; streamed in the organization's
row-level-security scope."""

import csv
import datetime
import io
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from lumapay.tenant_rls import no_organization
from org_profile.enums import Role
from payouts.enums import PayoutMethod, PayoutStatus, Reconciliation
from tests.factories import LocationFactory, MembershipFactory

from .factories import PayoutFactory, PayoutLineFactory

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
HEADER = [
    "Payout ID", "Created", "Arrival date", "Status", "Method", "Amount", "Currency", "Bank account (last 4)",
    "Trace ID", "Failure reason", "Reconciliation",
]


def export(client, data=None):
    response = client.post(reverse("payouts:export"), data or {})
    assert response.status_code == 200, response.status_code
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return response, list(csv.reader(io.StringIO(body)))


@pytest.fixture
def payouts(organization):
    return [
        PayoutFactory(organization=organization, gateway_payout_id="po_paid_1", amount_cents=123_456,
                      created_at=datetime.datetime(2026, 3, 31, 23, 30, tzinfo=NEW_YORK),
                      arrival_date=datetime.date(2026, 4, 2), trace_id="TRC0000000001",
                      reconciliation=Reconciliation.MATCHED),
        PayoutFactory(organization=organization, gateway_payout_id="=HYPERLINK(\"http://evil\")", amount_cents=5,
                      status=PayoutStatus.FAILED, method=PayoutMethod.INSTANT,
                      created_at=datetime.datetime(2026, 4, 1, 0, 15, tzinfo=NEW_YORK),
                      arrival_date=datetime.date(2026, 4, 1), bank_last4="-123", trace_id="@SUM(A1:A9)",
                      failure_code="account_closed", failure_message="+The bank account was closed",
                      reconciliation=Reconciliation.DIFFERENCE),
        PayoutFactory(organization=organization, gateway_payout_id="po_transit_3", amount_cents=700_000_00,
                      status=PayoutStatus.IN_TRANSIT, created_at=datetime.datetime(2026, 4, 2, 9, 5, 7, tzinfo=NEW_YORK),
                      arrival_date=datetime.date(2026, 4, 4), trace_id="", failure_code="no_reason_given"),
    ]


def test_the_csv_holds_every_payout_newest_first_as_a_bookkeeper_reads_it(client, manager, payouts):
    client.force_login(manager)

    response, rows = export(client)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="payouts-')
    assert response["Cache-Control"] == "private, no-store"
    assert rows == [
        HEADER,
        ["po_transit_3", "2026-04-02 09:05:07", "2026-04-04", "In transit", "Standard", "700000.00", "USD", "6789",
         "", "no_reason_given", "Lines not fetched yet"],
        # Free text from outside starting like a formula gets an apostrophe; numbers and dates do not.
        ["'=HYPERLINK(\"http://evil\")", "2026-04-01 00:15:00", "2026-04-01", "Failed", "Instant", "0.05", "USD",
         "'-123", "'@SUM(A1:A9)", "'+The bank account was closed", "Lines do not add up to the payout"],
        # 23:30 in New York on Mar 31 is Apr 1 in UTC: the file says the clinic's time.
        ["po_paid_1", "2026-03-31 23:30:00", "2026-04-02", "Paid", "Standard", "1234.56", "USD", "6789",
         "TRC0000000001", "", "Lines add up to the payout"],
    ]


def test_the_csv_holds_exactly_the_filtered_set_and_the_audit_event_says_which(client, manager, organization, payouts):
    client.force_login(manager)

    _, rows = export(client, {"status": ["failed", "in_transit"], "amount_max": "1000", "created_from": "2026-04-01",
                              "method": ""})

    assert [row[0] for row in rows[1:]] == ["'=HYPERLINK(\"http://evil\")"]
    event = AuditEvent.objects.get(action=AuditAction.PAYOUTS_EXPORTED)
    assert event.organization_id == organization.pk
    assert event.actor_user_id == manager.pk
    assert event.patient_id is None and event.transaction_id is None
    assert event.changes == {
        "filters": {"status": ["failed", "in_transit"], "amount_max": "1000", "created_from": "2026-04-01"},
        "row_count": 1,
    }


def test_an_invalid_filter_is_left_out_of_the_file_and_of_the_audit_event(client, manager, payouts):
    client.force_login(manager)

    _, rows = export(client, {"amount_min": "lots", "method": "instant"})

    assert len(rows) == 2
    assert AuditEvent.objects.get(action=AuditAction.PAYOUTS_EXPORTED).changes == {
        "filters": {"method": "instant"}, "row_count": 1,
    }


def test_the_csv_names_no_patient(client, manager, organization, payouts, patient):
    from tests.transactions.dashboard_support import ledger_transaction

    transaction = ledger_transaction(organization=organization, location=LocationFactory(organization=organization),
                                     patient=patient, created_at=payouts[0].created_at)
    PayoutLineFactory(payout=payouts[0], transaction=transaction)
    client.force_login(manager)

    _, rows = export(client)

    text = "\n".join(",".join(row) for row in rows)
    for detail in (patient.first_name, patient.last_name, patient.email, str(patient.date_of_birth)):
        assert detail not in text


def test_the_file_is_read_in_the_organizations_scope_while_it_streams(client, manager, other_organization, payouts):
    # The response streams after the view returned and the request's database scope was left; under
    # row-level security with no organization the cursor would see no rows.
    PayoutFactory(organization=other_organization, gateway_payout_id="po_other_clinic")
    client.force_login(manager)
    response = client.post(reverse("payouts:export"))

    with no_organization():
        body = b"".join(response.streaming_content).decode()

    assert [row[0] for row in csv.reader(io.StringIO(body))][1:] == [
        "po_transit_3", "'=HYPERLINK(\"http://evil\")", "po_paid_1",
    ]


def test_the_export_is_a_post_with_csrf(manager, payouts):
    from tests.two_step import VerifiedClient

    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(manager)

    assert client.post(reverse("payouts:export")).status_code == 403
    assert client.get(reverse("payouts:export")).status_code == 405
    assert not AuditEvent.objects.filter(action=AuditAction.PAYOUTS_EXPORTED).exists()


def test_a_sub_account_user_cannot_export(client, organization, payouts):
    staff = MembershipFactory(organization=organization, role=Role.STAFF,
                              locations=[LocationFactory(organization=organization)]).user
    client.force_login(staff)

    assert client.post(reverse("payouts:export")).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.PAYOUTS_EXPORTED).exists()
