"""Support tickets by e-mail, both ways: an operator's answer in the admin reaches the member by
e-mail with a Reply-To carrying the ticket's token; the member's reply comes back through the
e-mail provider's inbound webhook (Postmark's format, django-anymail's view, basic auth) and is
appended to the ticket. Nothing is mocked: the e-mail is Django's test outbox, the webhook a
real request to the view."""

import base64
import json
import logging
import re

import pytest
from django.core import mail
from django.urls import reverse

from helpcenter.help_enums import MessageAuthor, MessageChannel, TicketStatus
from helpcenter.help_models import SupportTicket
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess

from ..factories import UserFactory
from .support import PNG, ticket_data, upload

pytestmark = pytest.mark.django_db

SECRET = "lumapay-inbound:correct-horse-battery"
INBOUND = "/webhooks/email/postmark/inbound/"


@pytest.fixture
def inbound_secret(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    settings.HELP_CENTER_REPLY_ADDRESS = "support@help.lumapay.test"


def _open_ticket(client, member, **data):
    client.force_login(member)
    client.post(reverse("helpcenter:ticket_new"), ticket_data(files=[upload("s.png", PNG)], **data))
    client.logout()
    return SupportTicket.objects.latest("pk")


def _operator_answers(client, ticket, reply, *, status=None, django_capture_on_commit_callbacks):
    operator = UserFactory(is_staff=True, is_superuser=True, email="ops@lumapay.test")
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:helpcenter_supportticket_change", args=[ticket.pk]),
            {"status": status or ticket.status, "reply": reply, "_save": "Save"},
        )
    client.logout()
    assert response.status_code == 302, response.content[:2000]
    return operator


def _postmark_inbound(client, *, sender, to, text, message_id="<reply-1@mail.example>", secret=SECRET, attachments=()):
    payload = {
        "FromFull": {"Email": sender, "Name": "Dana"},
        "ToFull": [{"Email": to, "Name": ""}],
        "CcFull": [],
        "Subject": "Re: your ticket",
        "TextBody": text,
        "Headers": [{"Name": "Message-ID", "Value": message_id}],
        "MessageID": "22c74902-a0c1-4511-804f-341342852c90",
        "Attachments": [
            {"Name": name, "Content": base64.b64encode(data).decode(), "ContentType": kind, "ContentLength": len(data)}
            for name, data, kind in attachments
        ],
    }

    auth = "Basic " + base64.b64encode(secret.encode()).decode()
    return client.post(INBOUND, json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=auth)


def test_the_email_round_trip_appends_the_members_reply(client, staff_user, inbound_secret, django_capture_on_commit_callbacks):
    ticket = _open_ticket(client, staff_user)

    operator = _operator_answers(
        client, ticket, "Please reload the page and try again.", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks
    )

    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.ANSWERED
    answer = ticket.messages.get(author_kind=MessageAuthor.OPERATOR)
    assert answer.author == operator and answer.channel == MessageChannel.ADMIN
    assert AuditEvent.objects.filter(action=AuditAction.SUPPORT_TICKET_ANSWERED, actor_user=operator).exists()
    (email,) = mail.outbox
    assert email.to == [staff_user.email]
    assert email.reply_to == [f"support+{ticket.reply_token}@help.lumapay.test"]
    assert f"#{ticket.pk}" in email.subject and "Please reload the page" in email.body
    assert f"http://testserver/help/tickets/{ticket.pk}/" in email.body
    assert email.reply_to[0] in email.body  # the dev outbox shows no headers: the address is in the text

    reply_text = (
        "Reloading fixed it, thanks!\n\nOn Mon, Nov 30, 2026 at 9:00 AM LumaPay support wrote:\n"
        "> Please reload the page and try again.\n"
    )
    response = _postmark_inbound(client, sender=staff_user.email.upper(), to=email.reply_to[0], text=reply_text)

    assert response.status_code == 200
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    reply = ticket.messages.latest("pk")
    assert reply.author == staff_user and reply.channel == MessageChannel.EMAIL
    assert reply.body == "Reloading fixed it, thanks!"
    assert AuditEvent.objects.filter(action=AuditAction.SUPPORT_TICKET_REPLIED, actor_user=staff_user).exists()

    # The provider delivers the same e-mail again: it is not appended twice.
    _postmark_inbound(client, sender=staff_user.email, to=email.reply_to[0], text=reply_text)
    assert ticket.messages.count() == 3


def test_a_reply_from_anyone_but_the_member_is_not_appended(client, staff_user, inbound_secret, django_capture_on_commit_callbacks):
    ticket = _open_ticket(client, staff_user)
    _operator_answers(client, ticket, "An answer.", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)

    response = _postmark_inbound(client, sender="someone@else.example", to=mail.outbox[0].reply_to[0], text="Hijack")

    assert response.status_code == 200  # the provider must not retry it
    assert ticket.messages.count() == 2
    assert SupportTicket.objects.get(pk=ticket.pk).status == TicketStatus.ANSWERED


def test_a_reply_from_a_member_who_has_left_the_clinic_is_not_appended(client, staff_user, inbound_secret, django_capture_on_commit_callbacks):
    ticket = _open_ticket(client, staff_user)
    _operator_answers(client, ticket, "An answer.", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    staff_user.memberships.update(is_active=False)

    _postmark_inbound(client, sender=staff_user.email, to=mail.outbox[0].reply_to[0], text="Still here?")

    assert ticket.messages.count() == 2


def test_a_reply_to_an_unknown_token_changes_nothing(client, staff_user, inbound_secret):
    ticket = _open_ticket(client, staff_user)

    _postmark_inbound(client, sender=staff_user.email, to="support+" + "0" * 24 + "@help.lumapay.test", text="Hello")

    assert ticket.messages.count() == 1


def test_the_webhook_refuses_a_wrong_password_and_is_closed_without_a_secret(client, staff_user, inbound_secret, settings):
    ticket = _open_ticket(client, staff_user)
    to = f"support+{ticket.reply_token}@help.lumapay.test"

    assert _postmark_inbound(client, sender=staff_user.email, to=to, text="x", secret="lumapay-inbound:wrong").status_code == 400
    settings.ANYMAIL = {}
    assert _postmark_inbound(client, sender=staff_user.email, to=to, text="x").status_code == 403
    assert ticket.messages.count() == 1


def test_a_marked_ticket_is_never_quoted_in_email_and_the_operators_look_is_logged(
    client, staff_user, inbound_secret, organization, django_capture_on_commit_callbacks
):
    ticket = _open_ticket(client, staff_user, subject="Refund for Jorge Garcia", contains_patient_information="on")

    operator = _operator_answers(
        client, ticket, "Jorge Garcia's refund went through.", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks
    )
    client.force_login(operator)
    page = client.get(reverse("admin:helpcenter_supportticket_change", args=[ticket.pk]))

    (email,) = mail.outbox
    assert "Garcia" not in email.subject and "Garcia" not in email.body
    assert f"http://testserver/help/tickets/{ticket.pk}/" in email.body
    assert "PHI: marked by the member" in page.content.decode()
    access = PhiAccess.objects.filter(page="admin:helpcenter_supportticket_change").latest("pk")
    assert access.is_operator and access.actor_user == operator and access.organization == organization


def test_no_ticket_text_reaches_a_log(client, staff_user, inbound_secret, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    secret_words = ["Zanzibar-subject", "Quixotic-body", "Xylophone-answer", "Wombat-reply"]

    ticket = _open_ticket(client, staff_user, subject=secret_words[0], body=secret_words[1])
    _operator_answers(client, ticket, secret_words[2], django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    _postmark_inbound(client, sender=staff_user.email, to=mail.outbox[0].reply_to[0], text=secret_words[3])

    assert ticket.messages.count() == 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"ticket {ticket.pk}" in logged.lower()  # our lines name the ticket by id
    for word in [*secret_words, staff_user.email, ticket.reply_token]:
        assert word not in logged
    assert not re.search(r"support\+[0-9a-f]{24}", logged)


def test_operators_hear_of_a_new_ticket_and_of_each_reply_without_the_message(
    client, staff_user, inbound_secret, settings, django_capture_on_commit_callbacks
):
    settings.HELP_CENTER_OPERATOR_EMAILS = ["support-team@lumapay.test", "on-call@lumapay.test"]
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("helpcenter:ticket_new"), ticket_data())
    ticket = SupportTicket.objects.get()
    (notice,) = mail.outbox
    assert notice.to == ["support-team@lumapay.test", "on-call@lumapay.test"]
    assert notice.subject == f"[LumaPay support #{ticket.pk}] New ticket from {ticket.organization.name}: Export button does nothing"
    assert f"http://testserver/admin/helpcenter/supportticket/{ticket.pk}/change/" in notice.body
    assert "nothing downloads" not in notice.body  # the message stays in LumaPay

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("helpcenter:ticket_detail", args=[ticket.pk]), {"body": "Still broken after a reload."})
    assert "Reply in LumaPay" in mail.outbox[-1].subject and "Still broken" not in mail.outbox[-1].body

    client.logout()
    _operator_answers(client, ticket, "An answer.", django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    assert mail.outbox[-1].to == [staff_user.email]  # the operator's own answer notifies no operator
    with django_capture_on_commit_callbacks(execute=True):
        _postmark_inbound(client, sender=staff_user.email, to=f"support+{ticket.reply_token}@help.lumapay.test", text="Thanks!")
    assert "Reply by e-mail" in mail.outbox[-1].subject and mail.outbox[-1].to[0] == "support-team@lumapay.test"
    assert len(mail.outbox) == 4


def test_a_ticket_marked_as_holding_patient_information_keeps_its_subject_out_of_the_notice(
    client, staff_user, settings, django_capture_on_commit_callbacks
):
    settings.HELP_CENTER_OPERATOR_EMAILS = ["support-team@lumapay.test"]
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("helpcenter:ticket_new"), ticket_data(subject="Refund for Jane Roe", contains_patient_information="on"))
    (notice,) = mail.outbox
    assert "Jane Roe" not in notice.subject and "Jane Roe" not in notice.body
    assert "holding patient information" in notice.body


def test_nobody_is_told_when_no_operator_address_is_set(client, staff_user, settings, django_capture_on_commit_callbacks):
    settings.HELP_CENTER_OPERATOR_EMAILS = []
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        client.post(reverse("helpcenter:ticket_new"), ticket_data())
    assert mail.outbox == [] and SupportTicket.objects.count() == 1
    assert not any("operator" in repr(callback) for callback in queued)


def test_a_screenshot_in_an_emailed_reply_is_kept_and_a_file_we_refuse_is_named_on_the_reply(
    client, staff_user, inbound_secret, django_capture_on_commit_callbacks
):
    from .support import WINDOWS_PROGRAM

    ticket = _open_ticket(client, staff_user)
    response = _postmark_inbound(
        client, sender=staff_user.email, to=f"support+{ticket.reply_token}@help.lumapay.test", text="Here is the screen.",
        attachments=[("screen.png", PNG, "image/png"), ("tool.exe", WINDOWS_PROGRAM, "application/octet-stream")],
    )
    assert response.status_code == 200
    reply = ticket.messages.latest("pk")
    assert reply.channel == MessageChannel.EMAIL
    (kept,) = reply.attachments.all()
    assert (kept.file_name, kept.content_type, bytes(kept.content)) == ("screen.png", "image/png", PNG)
    assert reply.body.startswith("Here is the screen.")
    assert "Files not added to the ticket:" in reply.body and "tool.exe cannot be attached" in reply.body

    # The member sees both on the ticket's page.
    client.force_login(staff_user)
    page = client.get(reverse("helpcenter:ticket_detail", args=[ticket.pk])).content.decode()
    assert "screen.png" in page and "tool.exe cannot be attached" in page
