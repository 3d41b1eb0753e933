"""Support tickets and articles in the operators' admin.

An operator answers a ticket on its page: the reply box at the bottom adds the answer to the
thread, sets the status (Answered unless another is chosen) and e-mails the member, whose e-mailed
reply comes back to the same ticket. Tickets marked as holding patient information carry a badge,
and opening one is recorded in the PHI access log as an operator's look.
"""

from django import forms
from django.contrib import admin
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from lumapay.phi_access import phi_access_record

from . import tickets
from .help_enums import TicketStatus
from .help_models import HelpArticle, SupportTicket, TicketAttachment


class SupportTicketAdminForm(forms.ModelForm):
    reply = forms.CharField(
        label="Answer the member",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Added to the thread and e-mailed to the member (never quoting a ticket marked as holding patient information).",
    )

    class Meta:
        model = SupportTicket
        fields = ["status"]


@admin.register(SupportTicket)
class SupportTicketAdmin(admin.ModelAdmin):
    form = SupportTicketAdminForm
    list_display = ["__str__", "phi_badge", "subject_listed", "organization", "created_by", "category", "status", "updated_at"]
    list_filter = ["status", "category", "contains_patient_information", "organization"]
    search_fields = ["=id"]
    readonly_fields = ["organization", "created_by", "category", "subject_shown", "phi_badge", "page_path", "created_at", "thread"]
    fields = ["organization", "created_by", "category", "phi_badge", "subject_shown", "page_path", "created_at", "thread", "status", "reply"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Patient information")
    def phi_badge(self, ticket):
        if ticket.contains_patient_information:
            return format_html('<strong class="phi-badge">{}</strong>', "PHI: marked by the member")
        return "No"

    @admin.display(description="Subject")
    def subject_listed(self, ticket):
        # A marked ticket's subject shows only on its page, whose every look is logged.
        return "(patient information: open the ticket)" if ticket.contains_patient_information else ticket.subject

    @admin.display(description="Subject")
    def subject_shown(self, ticket):
        return ticket.subject

    @admin.display(description="Thread")
    def thread(self, ticket):
        rows = []
        for message in ticket.messages.select_related("author").prefetch_related("attachments"):
            files = format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:helpcenter_ticket_attachment", args=[attachment.pk]), attachment.file_name)
                    for attachment in message.attachments.all()
                ),
            )
            rows.append(
                format_html(
                    "<p><strong>{}</strong> ({}, {}, {:%Y-%m-%d %H:%M})</p><pre>{}</pre>{}",
                    message.get_author_kind_display(),
                    message.author.email if message.author else "",
                    message.get_channel_display(),
                    message.created_at,
                    message.body,
                    format_html("<p>Files: {}</p>", files) if files else "",
                )
            )
        return format_html_join("", "<div>{}</div>", ((row,) for row in rows))

    def get_urls(self):
        return [
            path(
                "attachments/<int:pk>/",
                self.admin_site.admin_view(self.attachment_view),
                name="helpcenter_ticket_attachment",
            ),
            *super().get_urls(),
        ]

    def attachment_view(self, request, pk):
        attachment = get_object_or_404(TicketAttachment.objects.select_related("message__ticket"), pk=pk)
        ticket = attachment.message.ticket
        if ticket.contains_patient_information:
            phi_access_record(request=request, patients=[], organization=ticket.organization, is_operator=True, shows_unlisted_records=True)
        response = HttpResponse(bytes(attachment.content), content_type=attachment.content_type)
        response["Content-Disposition"] = f'attachment; filename="attachment-{attachment.pk}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        ticket = self.get_object(request, object_id)
        if ticket is not None and ticket.contains_patient_information and request.method == "GET":
            phi_access_record(request=request, patients=[], organization=ticket.organization, is_operator=True, shows_unlisted_records=True)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # Every write goes through the ticket services (audited, the member e-mailed on commit).
        ticket = SupportTicket.objects.get(pk=obj.pk)
        reply = form.cleaned_data.get("reply", "").strip()
        status = form.cleaned_data["status"]
        if reply:
            if status == ticket.status and status in (TicketStatus.OPEN, TicketStatus.WAITING_ON_CLINIC):
                status = TicketStatus.ANSWERED
            tickets.ticket_answer(ticket=ticket, operator=request.user, body=reply, status=status)
        else:
            tickets.ticket_status_set(ticket=ticket, operator=request.user, status=status)


@admin.register(HelpArticle)
class HelpArticleAdmin(admin.ModelAdmin):
    """Read-only: articles are edited in helpcenter/articles/*.md and synced."""

    list_display = ["title", "slug", "position", "synced_at"]
    readonly_fields = [field.name for field in HelpArticle._meta.fields if field.name != "search_vector"]
    exclude = ["search_vector"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
