"""Posting to the EHR as staff see it: the status on the transaction's page, "Post again" for
managers and administrators (refused to sub-account users, nothing changed), the daily posting
files page and its download, and posting settings on an HL7 connection's page."""

import datetime

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse
from django.utils import timezone

from ehr_sync.enums import ConnectionOption, EhrConnectionKind
from ehr_sync.models import EhrConnection
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from transactions.enums import EhrPostingStatus
from transactions.models import EhrPosting
from tests.mllp_ehr import MllpEhr

from .payments import paid_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.EHR_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def ehr():
    server = MllpEhr(script=["AR"])
    yield server
    server.stop()


@pytest.fixture
def failed_posting(organization, location, ehr):
    EhrConnection.objects.create(
        organization=organization, name="Clinic HL7", kind=EhrConnectionKind.HL7_MLLP,
        options={ConnectionOption.SENDING_FACILITY: "CLINIC", ConnectionOption.POSTING_ENABLED: True,
                 ConnectionOption.OUTBOUND_ADDRESS: ehr.address, "timeout_seconds": 2},
    )
    transaction = paid_transaction(organization=organization, location=location, amount_cents=4000)
    posting = EhrPosting.objects.get(transaction=transaction)
    assert posting.status == EhrPostingStatus.FAILED  # the EHR answered AR to the send on commit
    return posting


def detail(client, posting):
    return client.get(reverse("transactions:transaction_detail", args=[posting.transaction_id])).content.decode()


def retry_url(posting):
    return reverse("transactions:ehr_posting_retry", args=[posting.transaction_id, posting.pk])


def test_the_page_shows_the_failure_in_the_ehrs_words_and_a_manager_posts_again(client_for, manager, failed_posting, ehr):
    client = client_for(manager)

    page = detail(client, failed_posting)
    assert "Posting to the EHR" in page
    assert "The EHR answered AR (reject): Patient account is closed." in page
    assert "Post again" in page

    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(retry_url(failed_posting))

    assert response.status_code == 302
    failed_posting.refresh_from_db()
    assert (failed_posting.status, failed_posting.attempts) == (EhrPostingStatus.POSTED, 2)
    assert len(ehr.payments) == 1
    audit = AuditEvent.objects.get(action=AuditAction.EHR_POSTING_RETRIED)
    assert (audit.actor_user, audit.transaction_id, audit.changes["status"]) == (manager, failed_posting.transaction_id, "failed")
    page = detail(client, failed_posting)
    assert "Posted" in page and "Post again" not in page
    # The timeline: the failure, staff's retry, the posting, LumaPay as the actor of the automatic ones.
    for title in ("Posting to the EHR failed", "Posting to the EHR started again by staff", "Posted to the EHR"):
        assert title in page


def test_post_again_is_refused_to_a_sub_account_user_and_nothing_changes(client_for, staff_user, failed_posting):
    client = client_for(staff_user)
    before = EhrPosting.objects.filter(pk=failed_posting.pk).values().get()

    page = detail(client, failed_posting)
    response = client.post(retry_url(failed_posting))

    assert "The EHR answered AR (reject)" in page and "Post again" not in page
    assert response.status_code == 403
    assert EhrPosting.objects.filter(pk=failed_posting.pk).values().get() == before
    assert not AuditEvent.objects.filter(action=AuditAction.EHR_POSTING_RETRIED).exists()


def test_a_posted_posting_is_not_posted_again(client_for, manager, failed_posting):
    EhrPosting.objects.filter(pk=failed_posting.pk).update(status=EhrPostingStatus.POSTED, next_attempt_at=None)
    client = client_for(manager)

    response = client.post(retry_url(failed_posting), follow=True)

    assert "This was posted to the EHR already." in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.EHR_POSTING_RETRIED).exists()


def test_an_upload_only_organizations_page_points_to_the_posting_files(client_for, manager, organization, location):
    transaction = paid_transaction(organization=organization, location=location, amount_cents=4000)
    client = client_for(manager)

    page = client.get(reverse("transactions:transaction_detail", args=[transaction.pk])).content.decode()
    files = client.get(reverse("transactions:ehr_posting_files"))
    today = timezone.now().astimezone(organization_zone(organization)).date()
    download = client.get(reverse("transactions:ehr_posting_file_download", args=[today.isoformat()]))

    assert "daily posting file" in page
    assert files.status_code == 200 and "Download CSV" in files.content.decode()
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="ehr-postings-{today.isoformat()}.csv"'
    lines = download.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 2 and ",Payment,40.00,USD," in lines[1]


def test_the_posting_files_are_refused_to_a_sub_account_user(client_for, staff_user):
    client = client_for(staff_user)

    assert client.get(reverse("transactions:ehr_posting_files")).status_code == 403
    assert client.get(reverse("transactions:ehr_posting_file_download", args=["2026-11-29"])).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.EHR_POSTING_FILE_DOWNLOADED).exists()


def test_posting_is_turned_on_for_an_hl7_connection_from_its_page(client_for, administrator, organization):
    connection = EhrConnection.objects.create(
        organization=organization, name="Clinic HL7", kind=EhrConnectionKind.HL7_MLLP,
        options={ConnectionOption.SENDING_FACILITY: "CLINIC"},
    )
    client = client_for(administrator)
    url = reverse("ehr_connections:edit", args=[connection.pk])
    form = {"name": "Clinic HL7", "sending_facility": "CLINIC", "is_active": "on", "posting_enabled": "on"}

    refused = client.post(url, form)
    assert "Enter where the EHR receives postings (host:port) to turn posting on." in refused.content.decode()
    connection.refresh_from_db()
    assert ConnectionOption.POSTING_ENABLED not in connection.options

    before = timezone.now()
    client.post(url, {**form, "outbound_address": "ehr.clinic.example:6661"})

    connection.refresh_from_db()
    assert connection.options[ConnectionOption.POSTING_ENABLED] is True
    assert connection.options[ConnectionOption.OUTBOUND_ADDRESS] == "ehr.clinic.example:6661"
    since = datetime.datetime.fromisoformat(connection.options[ConnectionOption.POSTING_SINCE])
    assert before <= since <= timezone.now()
    # Saved again, still on: the moment it was turned on stays.
    client.post(url, {**form, "outbound_address": "ehr.clinic.example:6662"})
    connection.refresh_from_db()
    assert datetime.datetime.fromisoformat(connection.options[ConnectionOption.POSTING_SINCE]) == since
    page = client.get(reverse("ehr_connections:detail", args=[connection.pk])).content.decode()
    assert "On: payments, refunds and reversals are posted as DFT^P03 to ehr.clinic.example:6662 (MLLP)" in page


def organization_zone(organization):
    from transactions.selectors.ledger import organization_zone as zone

    return zone(organization)
