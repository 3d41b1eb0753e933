"""The Help Center's articles and support tickets (Luma U's models live apart).

Articles are written in Markdown in ``helpcenter/articles/`` and copied here by
``help_articles_sync`` (``helpcenter/articles.py``): the files are the truth, this table is what
PostgreSQL searches. Tickets belong to an organization (row-level security) and to the member
who opened them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models

from .help_enums import MessageAuthor, MessageChannel, TicketCategory, TicketStatus


class HelpArticle(models.Model):
    """One article, as its Markdown file says, one per slug. Written only by ``help_articles_sync``.

    ``search_vector`` is the title (weight A) and the plain text of the body (weight B), in
    PostgreSQL's English configuration; the GIN index serves the Help Center's search.
    """

    slug = models.SlugField(max_length=80, unique=True)
    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    body_markdown = models.TextField()
    body_html = models.TextField()
    body_text = models.TextField(help_text="the body as plain text, for search and its snippets")
    # URL names of the staff pages this article helps with ("transactions:transaction_refund").
    pages = models.JSONField(default=list, blank=True)
    # Roles it is written for; empty means everyone.
    roles = models.JSONField(default=list, blank=True)
    position = models.PositiveIntegerField(default=100)
    search_vector = SearchVectorField(null=True, editable=False)
    source_sha256 = models.CharField(max_length=64)
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ["position", "title"]
        indexes = [GinIndex(fields=["search_vector"], name="help_article_search")]

    def __str__(self) -> str:
        return self.title


class SupportTicket(models.Model):
    """A member's question to LumaPay's operators, in their organization.

    The ``reply_token`` is the ticket's address for e-mail replies (support+<token>@…); it is
    random, never derived from the id. ``contains_patient_information`` is the member's own mark:
    such a ticket is badged in the admin, kept out of e-mails, and every look at it is in the PHI
    access log.
    """

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    subject = models.CharField(max_length=200)
    category = models.CharField(max_length=20, choices=TicketCategory.choices)
    status = models.CharField(max_length=20, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    contains_patient_information = models.BooleanField(default=False)
    # The staff page the member was on: the path only, never its query string (a search is PHI).
    page_path = models.CharField(max_length=300, blank=True)
    reply_token = models.CharField(max_length=32, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["organization", "created_by", "-updated_at"], name="help_ticket_member")]

    def __str__(self) -> str:
        return f"Ticket #{self.pk}"


class TicketMessage(models.Model):
    """One message of a ticket's thread: the member's first message, and every reply either way.
    Append-only."""

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="+")
    ticket = models.ForeignKey(SupportTicket, on_delete=models.CASCADE, related_name="messages")
    author_kind = models.CharField(max_length=10, choices=MessageAuthor.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=10, choices=MessageChannel.choices)
    body = models.TextField()
    # An inbound e-mail's Message-ID: the provider may deliver the same e-mail twice.
    email_message_id = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket", "email_message_id"],
                condition=~models.Q(email_message_id=""),
                name="help_message_email_once",
            )
        ]


class TicketAttachment(models.Model):
    """A file a member attached, kept in PostgreSQL (web servers and workers may be different
    hosts). Its type was recognized from its content, never from its name."""

    organization = models.ForeignKey("org_profile.Organization", on_delete=models.PROTECT, related_name="+")
    message = models.ForeignKey(TicketMessage, on_delete=models.CASCADE, related_name="attachments")
    file_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size_bytes = models.PositiveIntegerField()
    content = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
