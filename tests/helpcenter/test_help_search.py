"""The Help Center's search: PostgreSQL full-text search, a title match above a body match,
ranked results with highlighted, escaped snippets."""

import hashlib

import pytest
from django.urls import reverse

from helpcenter.articles import ArticleSource, article_parse, help_articles_search, help_articles_sync
from helpcenter.help_models import HelpArticle

pytestmark = pytest.mark.django_db


def _source(slug, title, body):
    return ArticleSource(slug=slug, title=title, summary="", body_markdown=body, sha256=hashlib.sha256((title + body).encode()).hexdigest())


def test_a_match_in_the_title_ranks_above_a_match_in_the_body():
    help_articles_sync(sources=(
        _source("body-only", "Receipts", "A chargeback (a dispute) is opened by the patient's bank."),
        _source("in-title", "Disputes and chargebacks", "What the bank asks for, and by when."),
    ))

    results = [article.slug for article in help_articles_search("chargeback")]

    assert results == ["in-title", "body-only"]


def test_how_do_i_refund_finds_the_refunds_article_first(help_articles):
    results = list(help_articles_search("how do I refund"))

    assert results[0].slug == "refunds"
    assert len(results) > 1  # other articles mention refunds in their bodies, ranked below
    assert results[0].rank > results[1].rank


def test_websearch_syntax_excludes_words(help_articles):
    found = list(help_articles_search("refund -payout"))
    everything = {article.slug for article in help_articles_search("refund")}

    assert found and {article.slug for article in found} < everything
    assert all("payout" not in article.body_text.lower() for article in found)


def test_the_search_page_lists_ranked_results_with_highlighted_snippets(help_articles, client, staff_user):
    client.force_login(staff_user)

    response = client.get(reverse("helpcenter:index"), {"q": "how do I refund"})

    assert response.status_code == 200
    results = response.context["results"]
    assert results[0].slug == "refunds"
    html = response.content.decode()
    assert html.index('href="/help/articles/refunds/"') < html.index('href="/help/articles/dashboard-and-transactions/"')
    assert "<mark>refund</mark>" in html.lower()


def test_a_snippet_never_carries_html_from_an_article():
    help_articles_sync(sources=(_source("tricky", "Tricky", "Type <script>alert(1)</script> & <b>x</b> refund here."),))
    from helpcenter.views_help import snippet_html

    article = help_articles_search("refund")[0]
    shown = snippet_html(article.snippet)

    assert "<script" not in shown and "<b>" not in shown and "&amp;" in shown
    assert "<mark>refund</mark>" in shown


def test_sync_is_idempotent_and_removes_articles_whose_file_is_gone(help_articles):
    count = HelpArticle.objects.count()
    assert help_articles_sync()["unchanged"] == count

    help_articles_sync(sources=(article_parse("---\ntitle: Only\nslug: only\n---\nBody.\n"),))

    assert list(HelpArticle.objects.values_list("slug", flat=True)) == ["only"]
    assert help_articles_sync()["deleted"] == 1
    assert HelpArticle.objects.count() == count


def test_an_empty_search_shows_the_articles_for_the_members_role(help_articles, client, staff_user):
    client.force_login(staff_user)

    response = client.get(reverse("helpcenter:index"))

    for_you = {article.slug for article in response.context["articles_for_you"]}
    others = {article.slug for article in response.context["other_articles"]}
    assert "payment-requests" in for_you and "refunds" in others and "ehr-connections" in others


def test_the_management_command_syncs_the_article_files():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("help_articles_sync", stdout=out)

    assert HelpArticle.objects.filter(slug="refunds").exists()
    assert out.getvalue().startswith(f"Help Center articles: {HelpArticle.objects.count()} created")
