"""Cards on file follow roles, as refunds do: which roles may charge a card on file, hold an amount
on it, and capture or release the hold is an organization setting (managers and administrators by
default, administrators always), and one charge or hold takes at most the organization's limit.
The services refuse everyone else (audited, nothing else written, nothing sent to Stripe); the
pages hide the buttons and answer 403. Against localstripe, as the other card-on-file tests."""

import pytest
from django.urls import reverse

from lumapay.errors import ApplicationError
from lumapay.models import AuditEvent
from org_profile.enums import Role
from org_profile.services import organization_update
from transactions.enums import PaymentRequestKind, TransactionEventKind as Kind, TransactionStatus
from transactions.models import SavedCard, Transaction, TransactionEvent
from transactions.selectors.ledger import transaction_timeline
from transactions.services.saved_cards import (
    authorization_capture,
    authorization_release,
    card_on_file_consent_text,
    saved_card_charge,
    saved_card_setup_begin,
    saved_card_setup_complete,
)

from ..factories import MembershipFactory
from ..stripe_support import stripe_clinic
from .pay_support import payment_request_make, text

pytestmark = pytest.mark.django_db

DEFAULT = ["administrator", "manager"]
REFUSED_BY_DEFAULT = (
    "In this organization, only administrators and managers can charge a card on file, hold an amount on it, "
    "or capture or release a hold."
)


@pytest.fixture
def card(stripe_world, stripe_organization, patient):
    """The patient's Visa on file, saved through their payment link."""
    start = saved_card_setup_begin(
        payment_request=payment_request_make(organization=stripe_organization, patient=patient),
        consent_given=True,
        consent_text=card_on_file_consent_text(stripe_organization),
        ip_address="203.0.113.9",
        success_url="http://testserver/pay/t/card-saved/",
        cancel_url="http://testserver/pay/t/details/",
    )
    stripe_world.checkout.save_card(start.checkout_id)
    return saved_card_setup_complete(saved_card=SavedCard.objects.get(gateway_setup_id=start.checkout_id))


def _member(organization, location, role):
    return MembershipFactory(organization=organization, role=role, locations=[location]).user


def _roles(organization, roles):
    organization.saved_card_roles = roles
    organization.save(update_fields=["saved_card_roles"])


def _charge(organization, actor, card, location, *, amount_cents=3000, hold_only=False):
    return saved_card_charge(
        organization=organization, actor=actor, saved_card=card, amount_cents=amount_cents,
        kind=PaymentRequestKind.COPAY if hold_only else PaymentRequestKind.BALANCE,
        billing_item="Office visit copay" if hold_only else "Balance after insurance",
        location=location, hold_only=hold_only,
    )  # fmt: skip


def _act(action, organization, actor, card, location, held):
    if action == "charge":
        return _charge(organization, actor, card, location)
    if action == "hold":
        return _charge(organization, actor, card, location, hold_only=True)
    if action == "capture":
        return authorization_capture(organization=organization, actor=actor, transaction=held)
    return authorization_release(organization=organization, actor=actor, transaction=held, reason="Appointment cancelled")


def _world(stripe_world, held):
    """What a refusal must leave as it was: the transactions, the hold's ledger, the PaymentIntents
    sent to Stripe, and the audit trail but for refusals."""
    return (
        list(Transaction.objects.order_by("id").values_list("id", "status", "charged_cents")),
        list(TransactionEvent.objects.filter(transaction=held).values_list("kind", "amount_cents")),
        len(stripe_world.http.recorded),
        list(AuditEvent.objects.exclude(action="saved_card.refused").values_list("id", flat=True)),
    )


@pytest.mark.parametrize("action", ["charge", "hold", "capture", "release"])
@pytest.mark.parametrize(
    "roles, role, allowed",
    [
        (DEFAULT, Role.ADMINISTRATOR, True),
        (DEFAULT, Role.MANAGER, True),
        (DEFAULT, Role.STAFF, False),
        (["administrator"], Role.MANAGER, False),
        (["administrator"], Role.ADMINISTRATOR, True),
        (["administrator", "staff"], Role.STAFF, True),
    ],
    ids=["default-administrator", "default-manager", "default-staff", "admins-only-manager", "admins-only-administrator", "with-staff-staff"],
)
def test_each_role_may_do_each_action_only_as_the_setting_says(
    stripe_world, stripe_organization, administrator, location, card, roles, role, allowed, action
):
    # given a copay already held by an administrator, and the organization's setting
    held = _charge(stripe_organization, administrator, card, location, hold_only=True)
    _roles(stripe_organization, roles)
    actor = administrator if role == Role.ADMINISTRATOR else _member(stripe_organization, location, role)
    before = _world(stripe_world, held)

    if allowed:
        result = _act(action, stripe_organization, actor, card, location, held)

        expected = {
            "charge": TransactionStatus.SUCCEEDED, "hold": TransactionStatus.AUTHORIZED,
            "capture": TransactionStatus.SUCCEEDED, "release": TransactionStatus.RELEASED,
        }  # fmt: skip
        assert result.status == expected[action]
        assert not AuditEvent.objects.filter(action="saved_card.refused").exists()
        return

    roles_text = "administrators" if roles == ["administrator"] else "administrators and managers"
    with pytest.raises(ApplicationError) as refused:
        _act(action, stripe_organization, actor, card, location, held)

    assert refused.value.message == (
        f"In this organization, only {roles_text} can charge a card on file, hold an amount on it, "
        "or capture or release a hold."
    )
    assert _world(stripe_world, held) == before
    held.refresh_from_db()
    assert held.status == TransactionStatus.AUTHORIZED
    audit = AuditEvent.objects.get(action="saved_card.refused")
    assert (audit.actor_type, audit.actor_user, audit.patient_id, audit.changes) == (
        "staff", actor, card.patient_id, {"attempted": action, "reason": "role", "amount_cents": 3000}
    )
    assert audit.transaction_id == (held.pk if action in ("capture", "release") else None)
    if action in ("capture", "release"):  # on the hold's timeline too, in words
        (entry,) = [entry for entry in transaction_timeline(transaction=held) if entry.title.startswith("Charge, hold")]
        assert (entry.detail, entry.is_warning) == (f"{action.capitalize()}: the member's role may not use cards on file.", True)


@pytest.mark.parametrize("hold_only", [False, True], ids=["charge", "hold"])
def test_a_charge_or_hold_above_the_organizations_limit_is_refused(
    stripe_world, stripe_organization, manager, location, card, hold_only
):
    # given the default limit of $2,000.00 for one charge of a card on file
    assert stripe_organization.saved_card_charge_max_cents == 200_000
    before = (Transaction.objects.count(), len(stripe_world.http.recorded))

    # when a manager charges (or holds) one cent more, then exactly the limit
    with pytest.raises(ApplicationError) as refused:
        _charge(stripe_organization, manager, card, location, amount_cents=200_001, hold_only=hold_only)

    # then the first is refused, saying why and what to do, and nothing reaches Stripe
    kind = "hold" if hold_only else "charge"
    assert refused.value.message == (
        f"$2,000.01 is more than this organization allows for one {kind} of a card on file ($2,000.00). "
        "Send the patient a payment request instead, or ask an administrator to raise the limit in the organization settings."
    )
    assert (Transaction.objects.count(), len(stripe_world.http.recorded)) == before
    audit = AuditEvent.objects.get(action="saved_card.refused")
    assert (audit.actor_user, audit.changes) == (manager, {"attempted": kind, "reason": "limit", "amount_cents": 200_001})

    at_limit = _charge(stripe_organization, manager, card, location, amount_cents=200_000, hold_only=hold_only)
    assert (at_limit.amount_cents, at_limit.status) == (
        200_000, TransactionStatus.AUTHORIZED if hold_only else TransactionStatus.SUCCEEDED
    )


def test_an_administrator_sets_the_limit_and_it_applies_to_the_next_charge(
    client_for, stripe_world, stripe_organization, administrator, manager, location, card
):
    from ..org_profile.test_organization_settings import FORM

    response = client_for(administrator).post(
        reverse("organization_settings"), {**FORM, "saved_card_charge_max": "150", "saved_card_roles": ["manager"]}
    )

    assert response.status_code == 302
    stripe_organization.refresh_from_db()
    assert stripe_organization.saved_card_charge_max_cents == 15_000
    audit = AuditEvent.objects.get(action="organization.updated")
    assert audit.changes["saved_card_charge_max_cents"] == [200_000, 15_000]
    with pytest.raises(ApplicationError, match=r"^\$150\.01 is more than this organization allows"):
        _charge(stripe_organization, manager, card, location, amount_cents=15_001)
    assert _charge(stripe_organization, manager, card, location, amount_cents=15_000).status == TransactionStatus.SUCCEEDED


@pytest.mark.parametrize("role", [Role.MANAGER, Role.STAFF])
def test_only_administrators_change_who_may_use_cards_and_the_limit(stripe_organization, location, role):
    member = _member(stripe_organization, location, role)

    with pytest.raises(ApplicationError, match="Only administrators can change the organization's settings."):
        organization_update(
            organization=stripe_organization, actor=member,
            data={"saved_card_roles": ["manager", "staff"], "saved_card_charge_max_cents": 10_000_000},
        )  # fmt: skip

    stripe_organization.refresh_from_db()
    assert (stripe_organization.saved_card_roles, stripe_organization.saved_card_charge_max_cents) == (DEFAULT, 200_000)
    assert not AuditEvent.objects.filter(action="organization.updated").exists()


def test_another_organizations_member_cannot_use_the_card(
    stripe_world, stripe_organization, location, other_organization, card
):
    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    stripe_clinic(stripe_world, other_organization)
    before = len(stripe_world.http.recorded)

    # through this organization: not a member here
    with pytest.raises(ApplicationError, match="only administrators and managers can charge"):
        _charge(stripe_organization, outsider, card, location)
    # through their own organization: the card is not theirs
    with pytest.raises(ApplicationError, match="This card does not exist."):
        _charge(other_organization, outsider, card, location)

    assert Transaction.objects.filter(saved_card=card).count() == 0
    assert len(stripe_world.http.recorded) == before
    assert list(AuditEvent.objects.filter(action="saved_card.refused").values_list("changes", flat=True)) == [
        {"attempted": "charge", "reason": "not_a_member", "amount_cents": 3000}
    ]


# -- the pages --------------------------------------------------------------------------------------


def test_a_role_that_may_not_sees_no_buttons_and_gets_403(
    client_for, stripe_world, stripe_organization, administrator, staff_user, location, card
):
    held = _charge(stripe_organization, administrator, card, location, hold_only=True)
    client = client_for(staff_user)

    profile = text(client.get(reverse("patients:profile", args=[card.patient_id])))
    detail = text(client.get(reverse("transactions:transaction_detail", args=[held.pk])))
    before = _world(stripe_world, held)
    answers = [
        client.post(reverse("transactions:saved_card_charge", args=[card.pk]), {"amount": "10", "billing_item": "x", "kind": "balance", "location": location.pk}),
        client.post(reverse("transactions:saved_card_hold", args=[card.pk]), {}),
        client.post(reverse("transactions:transaction_capture", args=[held.pk])),
        client.post(reverse("transactions:transaction_release", args=[held.pk]), {"reason": "x"}),
    ]  # fmt: skip

    assert "Visa ···· 4242" in profile and "Remove card" in profile
    assert "Charge this card" not in profile and "Hold a copay" not in profile
    assert "In this organization, only administrators and managers can charge this card or hold a copay on it." in profile
    assert "Capture at check-in" not in detail and "Release hold" not in detail
    assert "In this organization, only administrators and managers can capture or release a hold." in detail
    assert [answer.status_code for answer in answers] == [403] * 4
    assert REFUSED_BY_DEFAULT in text(answers[0])
    assert _world(stripe_world, held) == before


def test_a_manager_sees_the_buttons_and_the_limit(client_for, stripe_world, stripe_organization, administrator, manager, location, card):
    held = _charge(stripe_organization, administrator, card, location, hold_only=True)
    client = client_for(manager)

    profile = text(client.get(reverse("patients:profile", args=[card.patient_id])))
    detail = text(client.get(reverse("transactions:transaction_detail", args=[held.pk])))

    assert "Charge this card" in profile and "Hold a copay for an appointment" in profile
    assert "In dollars, such as 45 or 45.00. At most $2,000.00 a charge." in profile
    assert "Capture at check-in" in detail and "Release hold" in detail


def test_a_charge_above_the_limit_from_the_profile_is_refused_with_the_reason(
    client_for, stripe_world, stripe_organization, manager, location, card
):
    client = client_for(manager)

    response = client.post(
        reverse("transactions:saved_card_charge", args=[card.pk]),
        {"amount": "2,500", "billing_item": "Balance", "kind": "balance", "location": location.pk},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("patients:profile", args=[card.patient_id]), 302)]
    assert "$2,500.00 is more than this organization allows for one charge of a card on file ($2,000.00)." in text(response)
    assert Transaction.objects.filter(saved_card=card).count() == 0
