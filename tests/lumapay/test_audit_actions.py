"""One set of audit actions, each with one label, used by every timeline and history."""

import pytest
from django.urls import reverse

from lumapay.audit import audit_event_record
from lumapay.enums import AuditAction, audit_action_label
from lumapay.models import ActorType, AuditEvent
from transactions.selectors.ledger import transaction_timeline

from ..factories import PaymentRequestFactory
from ..transactions.payments import paid_transaction

pytestmark = pytest.mark.django_db


def test_every_action_has_one_distinct_human_label():
    labels = [str(label) for label in AuditAction.labels]

    assert len(set(labels)) == len(labels)
    for action, label in AuditAction.choices:
        assert "." not in str(label) and "_" not in str(label), action


def test_an_action_outside_the_set_is_refused_and_nothing_is_written(organization):
    with pytest.raises(ValueError):
        audit_event_record(organization=organization, action="pay_link.peeked", actor_type=ActorType.SYSTEM)

    assert AuditEvent.objects.count() == 0


def test_an_old_action_no_longer_listed_is_shown_in_words():
    assert audit_action_label("stripe.payout_paused") == "Stripe payout paused"
    assert audit_action_label(AuditAction.PAY_LINK_LOCKED) == "Payment link locked after too many wrong dates of birth"


def test_the_request_history_and_the_transaction_timeline_say_the_same_words(
    client_for, organization, location, patient, manager
):
    transaction = paid_transaction(organization=organization, patient=patient, location=location, amount_cents=4500)
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    transaction.payment_request = payment_request
    transaction.save(update_fields=["payment_request"])
    for action in (AuditAction.PAY_LINK_OPENED, AuditAction.PAY_LINK_VERIFICATION_FAILED, AuditAction.PAY_LINK_LOCKED):
        audit_event_record(
            organization=organization, action=action, actor_type=ActorType.PATIENT, patient=patient,
            payment_request=payment_request, ip_address="198.51.100.7",
        )

    response = client_for(manager).get(reverse("transactions:payment_request_detail", args=[payment_request.pk]))
    timeline = [entry.title for entry in transaction_timeline(transaction=transaction) if entry.source == "audit"]

    history = [entry.label for entry in response.context["history"]]
    assert history == [
        "Payment link opened",
        "Date of birth did not match",
        "Payment link locked after too many wrong dates of birth",
    ]
    assert timeline[-3:] == history
    body = response.content.decode()
    assert "pay_link.opened" not in body and "pay_link.locked" not in body
