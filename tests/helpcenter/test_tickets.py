"""Opening a support ticket from inside LumaPay: the form, attachments checked by content and
size, the page the member was on, who sees which ticket, and marked tickets' PHI access log."""

import pytest
from django.urls import reverse

from helpcenter.help_enums import MessageAuthor, TicketStatus
from helpcenter.help_models import SupportTicket, TicketAttachment, TicketMessage
from lumapay.enums import AuditAction
from lumapay.models import AuditEvent, PhiAccess
from org_profile.enums import Role

from ..factories import MembershipFactory
from .support import PDF, PNG, WINDOWS_PROGRAM, ticket_data, upload

pytestmark = pytest.mark.django_db


def test_a_member_opens_a_ticket_with_a_screenshot_and_the_page_they_were_on(client, staff_user, organization):
    client.force_login(staff_user)
    form = client.get(reverse("helpcenter:ticket_new"), {"from": "/transactions/12/refund/?q=Garcia"})
    assert form.context["form"]["page"].value() == "/transactions/12/refund/"
    assert "Please leave patient information out" in form.content.decode()

    response = client.post(
        reverse("helpcenter:ticket_new"),
        ticket_data(page="/transactions/12/refund/", files=[upload("screen.png", PNG, "image/png"), upload("a.pdf", PDF)]),
    )

    ticket = SupportTicket.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("helpcenter:ticket_detail", args=[ticket.pk])
    assert ticket.organization == organization and ticket.created_by == staff_user
    assert ticket.status == TicketStatus.OPEN and ticket.category == "bug"
    assert ticket.page_path == "/transactions/12/refund/"
    assert ticket.contains_patient_information is False
    assert len(ticket.reply_token) == 24
    message = TicketMessage.objects.get(ticket=ticket)
    assert message.author_kind == MessageAuthor.MEMBER and message.body.startswith("I press Export")
    assert sorted(TicketAttachment.objects.values_list("file_name", "content_type")) == [
        ("a.pdf", "application/pdf"), ("screen.png", "image/png")
    ]
    event = AuditEvent.objects.get(action=AuditAction.SUPPORT_TICKET_OPENED)
    assert event.changes == {"ticket": ticket.pk, "category": "bug", "contains_patient_information": False, "attachments": 2}
    assert "Export button" not in str(event.changes)


def test_the_page_comes_from_the_referring_staff_page_without_its_query(client, staff_user):
    client.force_login(staff_user)

    response = client.get(reverse("helpcenter:ticket_new"), HTTP_REFERER="http://testserver/patients/?q=Jorge+Garcia")

    assert response.context["form"]["page"].value() == "/patients/"


@pytest.mark.parametrize(
    "page",
    [
        "https://evil.example/patients/", "/no/such/page/", "//evil.example/x", "/help/",
        # A patient's link carries its token: never kept in a ticket.
        "/pay/0123456789abcdef0123456789abcdef:abcDEF_-0123456789abcdefghijklmnopqrstuvwx/",
        "/form/0123456789abcdef0123456789abcdef:abcDEF_-0123456789abcdefghijklmnopqrstuvwx/",
    ],
)
def test_a_page_that_is_not_a_lumapay_staff_page_is_not_kept(page, client, staff_user):
    client.force_login(staff_user)

    client.post(reverse("helpcenter:ticket_new"), ticket_data(page=page))

    assert SupportTicket.objects.get().page_path == ""


@pytest.mark.parametrize(
    ("file", "refusal"),
    [
        (upload("setup.png", WINDOWS_PROGRAM, "image/png"), "cannot be attached"),
        (upload("empty.txt", b""), "empty"),
    ],
)
def test_a_file_of_a_kind_we_do_not_accept_is_refused_and_nothing_is_saved(file, refusal, client, staff_user):
    client.force_login(staff_user)

    response = client.post(reverse("helpcenter:ticket_new"), ticket_data(files=[file]))

    assert response.status_code == 200
    assert refusal in response.content.decode()
    assert not SupportTicket.objects.exists() and not TicketAttachment.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.SUPPORT_TICKET_OPENED).exists()


def test_a_file_over_the_size_limit_is_refused(client, staff_user, settings):
    settings.HELP_TICKET_ATTACHMENT_MAX_BYTES = 1024
    client.force_login(staff_user)

    response = client.post(reverse("helpcenter:ticket_new"), ticket_data(files=[upload("big.pdf", PDF + b"x" * 2000)]))

    assert "too large" in response.content.decode()
    assert not SupportTicket.objects.exists()


def test_too_many_files_are_refused(client, staff_user, settings):
    settings.HELP_TICKET_MAX_ATTACHMENTS = 1
    client.force_login(staff_user)

    response = client.post(reverse("helpcenter:ticket_new"), ticket_data(files=[upload("a.pdf", PDF), upload("b.pdf", PDF)]))

    assert "at most 1" in response.content.decode()
    assert not SupportTicket.objects.exists()


def _ticket_of(client, user, **data):
    client.force_login(user)
    client.post(reverse("helpcenter:ticket_new"), ticket_data(files=[upload("s.png", PNG)], **data))
    client.logout()
    return SupportTicket.objects.latest("pk")


def test_members_see_their_own_tickets_and_administrators_their_organizations(
    client, staff_user, manager, administrator, organization, other_organization
):
    ticket = _ticket_of(client, staff_user)
    attachment = TicketAttachment.objects.get()
    stranger_admin = MembershipFactory(organization=other_organization, role=Role.ADMINISTRATOR).user
    detail = reverse("helpcenter:ticket_detail", args=[ticket.pk])
    download = reverse("helpcenter:attachment_download", args=[attachment.pk])

    for user, expected in [(staff_user, 200), (administrator, 200), (manager, 404), (stranger_admin, 404)]:
        client.force_login(user)
        assert client.get(detail).status_code == expected, user
        assert client.get(download).status_code == expected, user
        listed = client.get(reverse("helpcenter:ticket_list")).context["tickets"]
        assert (ticket in list(listed)) is (expected == 200), user
        client.logout()

    client.force_login(staff_user)
    response = client.get(download)
    assert response.content == PNG and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_member_replies_on_the_page_and_the_ticket_is_open_again(client, staff_user):
    ticket = _ticket_of(client, staff_user)
    SupportTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.ANSWERED)
    client.force_login(staff_user)

    response = client.post(reverse("helpcenter:ticket_detail", args=[ticket.pk]), {"body": "Still broken today."})

    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert ticket.messages.latest("pk").body == "Still broken today."


def test_another_members_reply_is_refused(client, staff_user, manager):
    ticket = _ticket_of(client, staff_user)
    client.force_login(manager)

    response = client.post(reverse("helpcenter:ticket_detail", args=[ticket.pk]), {"body": "Not mine."})

    assert response.status_code == 404
    assert ticket.messages.count() == 1


def test_only_a_marked_ticket_is_recorded_in_the_phi_access_log(client, staff_user, organization):
    plain = _ticket_of(client, staff_user)
    marked = _ticket_of(client, staff_user, contains_patient_information="on", subject="About a patient's payment")
    client.force_login(staff_user)

    client.get(reverse("helpcenter:ticket_detail", args=[plain.pk]))
    assert not PhiAccess.objects.exists()

    response = client.get(reverse("helpcenter:ticket_detail", args=[marked.pk]))
    assert "Contains patient information" in response.content.decode()
    access = PhiAccess.objects.get()
    assert access.page == "helpcenter:ticket_detail" and access.organization == organization
    assert access.actor_user == staff_user and access.patient_count == 0

    client.get(reverse("helpcenter:attachment_download", args=[marked.messages.get().attachments.get().pk]))
    assert PhiAccess.objects.filter(page="helpcenter:attachment_download").count() == 1


def test_ticket_pages_need_a_signed_in_member(client):
    for name in ["helpcenter:index", "helpcenter:ticket_new", "helpcenter:ticket_list"]:
        response = client.get(reverse(name))
        assert response.status_code == 302 and reverse("login") in response["Location"]
