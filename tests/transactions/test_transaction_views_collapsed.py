"""Staff views of a transaction stay in the PHI access log, one audit event each, but its timeline
shows them as one collapsed line, counted by one aggregate query: the page does not grow with them."""

import datetime

import pytest
from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lumapay.enums import AuditAction
from lumapay.models import ActorType, AuditEvent
from transactions.selectors.ledger import transaction_timeline

from ..factories import MembershipFactory
from .payments import paid_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def payment(organization, patient, location):
    return paid_transaction(organization=organization, patient=patient, location=location, amount_cents=5000)


def _views(payment, users, count):
    """``count`` staff views, round robin over ``users``, a minute apart, the last one the newest."""
    start = timezone.now() - datetime.timedelta(days=30)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            organization_id=payment.organization_id, action=AuditAction.TRANSACTION_VIEWED, actor_type=ActorType.STAFF,
            actor_user=users[i % len(users)], patient_id=payment.patient_id, transaction=payment,
        )
        for i in range(count)
    )
    # auto_now_add stamps them all now: spread them out a minute apart, in id order.
    views = AuditEvent.objects.filter(transaction=payment, action=AuditAction.TRANSACTION_VIEWED)
    first_id = views.order_by("id").values_list("id", flat=True).first()
    views.update(
        created_at=ExpressionWrapper(
            Value(start) + (F("id") - first_id) * Value(datetime.timedelta(minutes=1)), output_field=DateTimeField()
        )
    )


def _staff(user) -> str:
    return f"{user.get_full_name()} ({user.email})"


def test_views_are_one_collapsed_line_with_the_count_the_people_and_the_last_viewer(organization, manager, payment):
    other = MembershipFactory(organization=organization).user
    third = MembershipFactory(organization=organization).user
    _views(payment, [other, third, manager], 301)

    timeline = transaction_timeline(transaction=payment)

    views = [entry for entry in timeline if entry.source == "views"]
    assert [(entry.title, entry.actor) for entry in views] == [("Viewed 301 times by 3 staff members", _staff(other))]
    last = AuditEvent.objects.filter(action=AuditAction.TRANSACTION_VIEWED).latest("created_at", "id")
    assert views[0].at == last.created_at
    assert not [entry for entry in timeline if entry.title == "Viewed by staff"]
    assert AuditEvent.objects.filter(action=AuditAction.TRANSACTION_VIEWED).count() == 301


def test_one_view_reads_naturally(organization, manager, payment):
    _views(payment, [manager], 1)

    (views,) = [entry for entry in transaction_timeline(transaction=payment) if entry.source == "views"]

    assert (views.title, views.actor) == ("Viewed once by 1 staff member", _staff(manager))


def test_the_page_stays_the_same_size_and_query_count_with_thousands_of_views(client_for, organization, manager, payment):
    client = client_for(manager)
    url = reverse("transactions:transaction_detail", args=[payment.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        small = client.get(url)
    _views(payment, [manager, MembershipFactory(organization=organization).user], 5_000)

    with CaptureQueriesContext(connection) as many:
        large = client.get(url)

    body = large.content.decode()
    assert len(many.captured_queries) == len(few.captured_queries)
    assert abs(len(large.content) - len(small.content)) < 100
    assert "Viewed 5,003 times by 2 staff members" in body
    assert body.count("Viewed by staff") == 0
    assert AuditEvent.objects.filter(action=AuditAction.TRANSACTION_VIEWED, transaction=payment).count() == 5_003
