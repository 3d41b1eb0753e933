"""The row locks of transactions/locks.py take their own row only.

While a request's or a transaction's lock is held, another session must still be able to insert a
row that names the same organization, patient or location (an audit event, a ledger event, another
checkout): its foreign-key check takes ``FOR KEY SHARE`` on those rows, which a ``FOR UPDATE`` over
the join would block, and two such waits in opposite order are a deadlock.
"""

import psycopg
import pytest
from django.db import connection, transaction as db_transaction

from transactions.locks import payment_request_lock, refund_lock, transaction_lock
from transactions.models import Refund

from .pay_support import payment_request_make
from .payments import checkout_transaction

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]


def _other_session():
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)


def _key_share_refused(other, table: str, pk: int) -> bool:
    """Whether another session's foreign-key check on this row would have to wait."""
    try:
        other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE NOWAIT", [pk])
    except psycopg.errors.LockNotAvailable:
        return True
    return False


def test_the_request_and_transaction_locks_leave_the_organization_patient_and_location_free(organization):
    payment_request = payment_request_make(organization=organization)
    transaction = checkout_transaction(
        organization=organization, payment_request=payment_request, patient=payment_request.patient,
        location=payment_request.location,
    )
    refund = Refund.objects.create(
        organization=organization, transaction=transaction, amount_cents=100, reason="Overcharged"
    )
    joined = [
        ("org_profile_organization", organization.pk),
        ("ehr_sync_patient", payment_request.patient_id),
        ("org_profile_location", payment_request.location_id),
    ]

    with _other_session() as other, db_transaction.atomic():
        locked_request = payment_request_lock(payment_request_id=payment_request.pk)
        locked = transaction_lock(transaction_id=transaction.pk)
        refund_lock(refund_id=refund.pk)
        # The joined rows are read with the lock (no query more)...
        assert (locked_request.organization.name, locked.organization.name) == (organization.name, organization.name)

        # ...but not locked: another session's insert naming them would not wait.
        assert [(table, _key_share_refused(other, table, pk)) for table, pk in joined] == [
            (table, False) for table, _pk in joined
        ]
        # The locked rows themselves are taken.
        assert _key_share_refused(other, "transactions_paymentrequest", payment_request.pk) is True
        assert _key_share_refused(other, "transactions_transaction", transaction.pk) is True
