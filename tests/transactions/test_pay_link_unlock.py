"""A link locked by wrong dates of birth: the request's page says so and until when, Re-send refuses
to send the locked link, and a manager or administrator unlocks it or sends a fresh link (a new
token: the old link stops working). Both are audited with the change."""

import datetime
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from lumapay import sms
from lumapay.dates import format_datetime
from lumapay.models import AuditEvent
from org_profile.access import AccessDenied
from transactions.errors import PaymentRequestError, PaymentRequestStateError
from transactions.links import payment_link_token, payment_link_url, payment_request_from_token
from transactions.models import PaymentRequest, PaymentRequestDelivery
from transactions.services.payment_requests import pay_link_replace, pay_link_unlock, payment_request_resend
from transactions.services.payments import DateOfBirthMismatch, PaymentLinkLocked, payment_link_verify

from ..factories import PaymentRequestFactory
from ..two_step import VerifiedClient
from .pay_support import dob_submit, pay_url

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"


@pytest.fixture
def locked_request(organization, location, patient):
    """An open request whose link the patient locked with five wrong dates of birth."""
    organization.timezone = LA
    organization.save(update_fields=["timezone"])
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    wrong = patient.date_of_birth + datetime.timedelta(days=1)
    for _attempt in range(5):
        try:
            payment_link_verify(payment_request=payment_request, date_of_birth=wrong, ip_address=None)
        except (DateOfBirthMismatch, PaymentLinkLocked):
            pass
    payment_request.refresh_from_db()
    assert payment_request.verification_locked_until > timezone.now()
    AuditEvent.objects.all().delete()  # the patient's attempts: not what these tests look at
    return payment_request


def _state(payment_request):
    row = PaymentRequest.objects.get(pk=payment_request.pk)
    return (
        row.public_id, row.verification_locked_until, row.failed_verification_count, row.expires_at,
        PaymentRequestDelivery.objects.count(), AuditEvent.objects.count(),
    )


def _iso(value):
    return value.isoformat() if value else None


# -- the services -------------------------------------------------------------------------------


def test_a_manager_unlocks_the_link_and_the_patient_can_answer_again(client, organization, manager, locked_request):
    locked_until = locked_request.verification_locked_until

    returned = pay_link_unlock(organization=organization, actor=manager, payment_request=locked_request)

    stored = PaymentRequest.objects.get()
    assert (stored.verification_locked_until, stored.failed_verification_count) == (None, 0)
    assert returned.verification_locked_until is None
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_type, event.actor_user, event.payment_request, event.patient) == (
        "pay_link.unlocked", "staff", manager, stored, stored.patient
    )
    assert event.changes == {"verification_locked_until": [_iso(locked_until), None]}
    assert dob_submit(client, stored).status_code == 302  # the right date of birth now opens it


def test_an_administrator_sends_a_fresh_link_and_the_old_one_stops_working(
    client, organization, administrator, locked_request, mailoutbox, django_capture_on_commit_callbacks
):
    old_token = payment_link_token(locked_request)
    old_public_id = locked_request.public_id

    with django_capture_on_commit_callbacks(execute=True):
        returned = pay_link_replace(organization=organization, actor=administrator, payment_request=locked_request)

    stored = PaymentRequest.objects.get()
    assert stored.public_id != old_public_id and returned.public_id == stored.public_id
    assert (stored.verification_locked_until, stored.failed_verification_count) == (None, 0)
    assert stored.expires_at > timezone.now() + datetime.timedelta(days=29)
    assert payment_request_from_token(old_token) is None
    assert client.get(reverse("pay:verify", kwargs={"token": old_token})).status_code == 404
    assert client.get(pay_url("verify", stored)).status_code == 200
    assert len(mailoutbox) == 1 and payment_link_url(stored) in mailoutbox[0].body
    assert old_token not in mailoutbox[0].body
    assert len(sms.outbox) == 1 and payment_link_url(stored) in sms.outbox[0].body
    event = AuditEvent.objects.get(action="pay_link.replaced")
    assert (event.actor_user, event.payment_request) == (administrator, stored)
    assert event.changes == {
        "link": "replaced",
        "verification_locked_until": [_iso(locked_request.verification_locked_until), None],
        "expires_at": [_iso(locked_request.expires_at), _iso(stored.expires_at)],
        "channels": ["email", "sms"],
    }


@pytest.mark.parametrize("service", [pay_link_unlock, pay_link_replace])
def test_a_sub_account_user_may_not_unlock_or_replace(organization, staff_user, locked_request, service):
    before = _state(locked_request)

    with pytest.raises(AccessDenied) as refused:
        service(organization=organization, actor=staff_user, payment_request=locked_request)

    assert refused.value.message == "Only managers and administrators can unlock a payment link or send a fresh one."
    assert _state(locked_request) == before


@pytest.mark.parametrize("service", [pay_link_unlock, pay_link_replace])
def test_another_organizations_member_may_not_unlock_or_replace(other_organization, locked_request, service):
    from org_profile.enums import Role

    from ..factories import MembershipFactory

    outsider = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    before = _state(locked_request)

    with pytest.raises(PaymentRequestError):
        service(organization=other_organization, actor=outsider, payment_request=locked_request)

    assert _state(locked_request) == before


def test_unlocking_a_link_that_is_not_locked_is_refused(organization, location, patient, manager):
    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    before = _state(payment_request)

    with pytest.raises(PaymentRequestStateError) as refused:
        pay_link_unlock(organization=organization, actor=manager, payment_request=payment_request)

    assert refused.value.message == "This link is not locked: the patient can open it."
    assert _state(payment_request) == before


@pytest.mark.parametrize("status", ["paid", "cancelled"])
@pytest.mark.parametrize("service", [pay_link_unlock, pay_link_replace])
def test_a_closed_request_cannot_be_unlocked_or_replaced(organization, manager, locked_request, status, service):
    PaymentRequest.objects.filter(pk=locked_request.pk).update(status=status)
    locked_request.refresh_from_db()
    before = _state(locked_request)

    with pytest.raises(PaymentRequestStateError):
        service(organization=organization, actor=manager, payment_request=locked_request)

    assert _state(locked_request) == before


def test_resend_refuses_to_send_a_locked_link(organization, administrator, locked_request, mailoutbox):
    before = _state(locked_request)
    local = timezone.localtime(locked_request.verification_locked_until, zoneinfo.ZoneInfo(LA))

    with pytest.raises(PaymentRequestStateError) as refused:
        payment_request_resend(organization=organization, actor=administrator, payment_request=locked_request)

    assert refused.value.message == (
        f"This request's link is locked until {format_datetime(local, LA)} after too many wrong "
        "dates of birth: re-sending would send the locked link. Unlock it, or send a fresh link."
    )
    assert _state(locked_request) == before
    assert mailoutbox == []


# -- the request's page --------------------------------------------------------------------------


def _detail(payment_request):
    return reverse("transactions:payment_request_detail", args=[payment_request.pk])


def test_the_request_page_says_the_link_is_locked_and_until_when(client_for, manager, locked_request):
    local = timezone.localtime(locked_request.verification_locked_until, zoneinfo.ZoneInfo(LA))

    body = client_for(manager).get(_detail(locked_request)).content.decode()

    assert '<span class="status status-locked">Link locked</span>' in body
    assert "Awaiting payment" not in body
    assert (
        f"The payment link is locked until {format_datetime(local, LA)} after too many wrong dates of birth."
    ) in body
    assert f'action="{reverse("transactions:payment_request_unlock", args=[locked_request.pk])}"' in body
    assert f'action="{reverse("transactions:payment_request_replace_link", args=[locked_request.pk])}"' in body
    assert f'action="{reverse("transactions:payment_request_resend", args=[locked_request.pk])}"' not in body


def test_the_patient_profile_says_the_request_is_locked_and_until_when(client_for, manager, locked_request):
    body = client_for(manager).get(reverse("patients:profile", args=[locked_request.patient_id])).content.decode()

    assert '<span class="status status-locked">Link locked</span>' in body
    assert f"Until {format_datetime(locked_request.verification_locked_until, LA)}" in body
    assert "Awaiting payment" not in body


def test_the_patient_profile_shows_an_unlocked_request_as_awaiting_payment(client_for, manager, locked_request):
    pay_link_unlock(organization=locked_request.organization, actor=manager, payment_request=locked_request)

    body = client_for(manager).get(reverse("patients:profile", args=[locked_request.patient_id])).content.decode()

    assert "Link locked" not in body
    assert "Awaiting payment" in body


def test_staff_see_the_lock_and_whom_to_ask_but_no_unlock_buttons(client_for, staff_user, locked_request):
    body = client_for(staff_user).get(_detail(locked_request)).content.decode()

    assert "Link locked" in body
    assert "A manager or administrator can unlock it or send a fresh link." in body
    assert reverse("transactions:payment_request_unlock", args=[locked_request.pk]) not in body
    assert reverse("transactions:payment_request_replace_link", args=[locked_request.pk]) not in body


def test_unlocking_from_the_page(client_for, manager, locked_request):
    response = client_for(manager).post(
        reverse("transactions:payment_request_unlock", args=[locked_request.pk]), follow=True
    )

    assert response.redirect_chain == [(_detail(locked_request), 302)]
    assert [str(m) for m in response.context["messages"]] == [
        "The payment link is unlocked: the patient can enter their date of birth again."
    ]
    assert "Link locked" not in response.content.decode()
    assert PaymentRequest.objects.get().verification_locked_until is None


def test_sending_a_fresh_link_from_the_page(client_for, manager, locked_request, django_capture_on_commit_callbacks):
    old_public_id = locked_request.public_id

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(manager).post(
            reverse("transactions:payment_request_replace_link", args=[locked_request.pk]), follow=True
        )

    assert [str(m) for m in response.context["messages"]] == [
        "A fresh payment link was sent to the patient. The old link no longer works."
    ]
    stored = PaymentRequest.objects.get()
    assert stored.public_id != old_public_id and stored.verification_locked_until is None
    history = [entry.label for entry in response.context["history"]]
    assert history[0] == "Fresh payment link sent; the old link no longer works"


@pytest.mark.parametrize("name", ["transactions:payment_request_unlock", "transactions:payment_request_replace_link"])
def test_staff_posting_unlock_or_fresh_link_get_403(client_for, staff_user, locked_request, name):
    before = _state(locked_request)

    response = client_for(staff_user).post(reverse(name, args=[locked_request.pk]))

    assert response.status_code == 403
    assert _state(locked_request) == before


@pytest.mark.parametrize("name", ["transactions:payment_request_unlock", "transactions:payment_request_replace_link"])
def test_unlock_and_fresh_link_need_post_and_the_csrf_token(manager, locked_request, name):
    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(manager)
    before = _state(locked_request)

    answers = (client.get(reverse(name, args=[locked_request.pk])).status_code, client.post(reverse(name, args=[locked_request.pk])).status_code)

    assert answers == (405, 403)
    assert _state(locked_request) == before


def test_a_checkout_begun_on_the_old_link_is_not_resumed_by_the_fresh_one(
    client, organization, manager, location, patient, django_capture_on_commit_callbacks
):
    from transactions.models import SandboxCheckoutSession, Transaction

    from .pay_support import checkout_path, verified

    payment_request = PaymentRequestFactory(organization=organization, location=location, patient=patient)
    verified(client, payment_request)
    checkout_path(client, payment_request)  # begun on the old link, then left
    with django_capture_on_commit_callbacks(execute=True):
        fresh = pay_link_replace(organization=organization, actor=manager, payment_request=payment_request)

    verified(client, fresh)
    checkout_path(client, fresh)

    newest = Transaction.objects.order_by("-id").first()
    session = SandboxCheckoutSession.objects.get(id=newest.gateway_checkout_id)
    assert Transaction.objects.count() == 2
    assert session.success_url.endswith(pay_url("done", fresh))
