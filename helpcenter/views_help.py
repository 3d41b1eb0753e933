"""The Help Center's pages, for every signed-in member of an organization: the index with its
search (PostgreSQL full-text search, ranked, with highlighted snippets), an article, and the
support tickets (open one, the list, a ticket's thread, an attachment).

The organization is the session's membership's, never the URL's: a ticket or attachment of
another organization, or another member's ticket (for anyone but an administrator), is 404.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from lumapay.phi_access import phi_access_record
from org_profile.access import ADMINISTRATORS, AccessDenied, found_or_404, membership_required

from . import tickets
from .articles import SNIPPET_START, SNIPPET_STOP, help_articles_search
from .forms_help import ReplyForm, SearchForm, TicketForm
from .help_models import HelpArticle


def snippet_html(snippet: str) -> str:
    """PostgreSQL's headline, escaped, with its sentinels turned into <mark>."""
    return mark_safe(escape(snippet).replace(SNIPPET_START, "<mark>").replace(SNIPPET_STOP, "</mark>"))


def _for_role(articles, role: str):
    return [article for article in articles if not article.roles or role in article.roles]


@membership_required()
@require_safe
def help_index(request):
    form = SearchForm(request.GET or None)
    query = form.cleaned_data["q"].strip() if form.is_valid() else ""
    context = {"nav": "help", "form": form, "query": query}
    if query:
        results = list(help_articles_search(query))
        for article in results:
            article.snippet_html = snippet_html(article.snippet)
        context["results"] = results
    else:
        articles = list(HelpArticle.objects.only("slug", "title", "summary", "roles", "position"))
        role = request.membership.role
        context["articles_for_you"] = _for_role(articles, role)
        context["other_articles"] = [article for article in articles if article not in context["articles_for_you"]]
    return render(request, "helpcenter/help/index.html", context)


@membership_required()
@require_safe
def help_article(request, slug):
    article = found_or_404(HelpArticle.objects.filter(slug=slug).first(), "No such article.")
    context = {
        "nav": "help",
        "article": article,
        "body_html": mark_safe(article.body_html),  # rendered by markdown-it with raw HTML off
        "ticket_url": _ticket_new_url(request.GET.get("from")),
        "from_path": tickets.page_path_clean(request.GET.get("from")),
    }
    return render(request, "helpcenter/help/article.html", context)


def _ticket_new_url(from_value: str | None) -> str:
    url = reverse("helpcenter:ticket_new")
    path = tickets.page_path_clean(from_value)
    return f"{url}?{urlencode({'from': path})}" if path else url


@membership_required()
@require_http_methods(["GET", "HEAD", "POST"])
def ticket_new(request):
    if request.method == "POST":
        form = TicketForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                ticket = tickets.ticket_create(
                    organization=request.organization,
                    actor=request.user,
                    subject=data["subject"],
                    body=data["body"],
                    category=data["category"],
                    contains_patient_information=data["contains_patient_information"],
                    page_path=data["page"],
                    files=data["files"],
                )
            except (tickets.TicketRefused, AccessDenied) as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, _("Ticket #%(number)s sent. LumaPay support answers here and by e-mail.") % {"number": ticket.pk})
                return redirect("helpcenter:ticket_detail", ticket.pk)
    else:
        # The page the member came from: the Help link's ?from=, or the page that linked here.
        page = tickets.page_path_clean(request.GET.get("from")) or tickets.page_path_clean(request.META.get("HTTP_REFERER"))
        form = TicketForm(initial={"page": page})
    return render(request, "helpcenter/help/ticket_new.html", {"nav": "help", "form": form, "page": form["page"].value()})


@membership_required()
@require_safe
def ticket_list(request):
    membership = request.membership
    context = {
        "nav": "help",
        "tickets": tickets.tickets_visible(membership=membership)[:200],
        "sees_organization": membership.role in ADMINISTRATORS,
    }
    return render(request, "helpcenter/help/ticket_list.html", context)


@membership_required()
@require_http_methods(["GET", "HEAD", "POST"])
def ticket_detail(request, pk):
    ticket = found_or_404(tickets.ticket_get(membership=request.membership, pk=pk), "No such ticket.")
    form = ReplyForm()
    if request.method == "POST":
        form = ReplyForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                tickets.ticket_reply_by_member(
                    ticket=ticket, actor=request.user, body=form.cleaned_data["body"], files=form.cleaned_data["files"]
                )
            except (tickets.TicketRefused, AccessDenied) as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, _("Reply sent."))
                return redirect("helpcenter:ticket_detail", ticket.pk)
    if ticket.contains_patient_information:
        # Marked by its member as holding patient information: every look is in the PHI access log.
        phi_access_record(request=request, patients=[], organization=request.organization, shows_unlisted_records=True)
    thread = ticket.messages.select_related("author").prefetch_related("attachments")
    context = {"nav": "help", "ticket": ticket, "thread": thread, "form": form}
    return render(request, "helpcenter/help/ticket_detail.html", context)


@membership_required()
@require_safe
def attachment_download(request, pk):
    attachment = found_or_404(tickets.attachment_get(membership=request.membership, pk=pk), "No such file.")
    if attachment.message.ticket.contains_patient_information:
        phi_access_record(request=request, patients=[], organization=request.organization, shows_unlisted_records=True)
    response = HttpResponse(bytes(attachment.content), content_type=attachment.content_type)
    # Always a download, never shown inline: a file is not a page of LumaPay's.
    response["Content-Disposition"] = f'attachment; filename="attachment-{attachment.pk}{_extension(attachment.content_type)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _extension(content_type: str) -> str:
    return {
        "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
        "image/webp": ".webp", "text/plain": ".txt",
    }.get(content_type, "")
