"""Every article parses, renders (raw HTML escaped), names staff pages that exist, and opens;
the header's "Help for this page" opens the article of the page the member is on."""

import pytest
from django.urls import get_resolver, reverse

from helpcenter.articles import ArticleError, article_parse, article_sources, help_page_links, markdown_render
from helpcenter.help_models import HelpArticle
from org_profile.enums import Role

from ..factories import MembershipFactory
from ..transactions.payments import paid_transaction

pytestmark = pytest.mark.django_db


def _view_names(resolver=None, namespace=""):
    names = set()
    for pattern in (resolver or get_resolver()).url_patterns:
        if hasattr(pattern, "url_patterns"):
            names |= _view_names(pattern, namespace + (f"{pattern.namespace}:" if pattern.namespace else ""))
        elif pattern.name:
            names.add(namespace + pattern.name)
    return names


def test_every_article_file_parses_and_the_topics_asked_for_are_written():
    slugs = {source.slug for source in article_sources()}

    assert {
        "payment-requests", "refunds", "excel-exports", "payouts", "ehr-connections", "upload-center",
        "intake-forms", "security-settings", "collection-rules", "organization-profile",
    } <= slugs


def test_every_page_an_article_names_is_a_url_of_lumapay():
    names = _view_names()

    for source in article_sources():
        assert set(source.pages) <= names, (source.slug, set(source.pages) - names)
        assert set(source.roles) <= set(Role.values), source.slug


def test_raw_html_in_an_article_is_shown_as_text():
    html = markdown_render("Hello <script>alert(1)</script> **bold** <img src=x onerror=alert(1)>")

    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "<strong>bold</strong>" in html


def test_an_article_without_front_matter_or_with_a_bad_slug_is_refused():
    with pytest.raises(ArticleError):
        article_parse("# No front matter\n")
    with pytest.raises(ArticleError):
        article_parse("---\ntitle: X\nslug: Bad Slug\n---\nBody\n")


@pytest.mark.parametrize("slug", sorted(source.slug for source in article_sources()))
def test_every_article_page_opens_for_a_member(slug, help_articles, client, staff_user):
    client.force_login(staff_user)

    response = client.get(reverse("helpcenter:article", args=[slug]))

    assert response.status_code == 200
    article = HelpArticle.objects.get(slug=slug)
    assert article.title in response.content.decode().replace("&#x27;", "'")
    assert "<h2>" in article.body_html or "<p>" in article.body_html


def test_help_pages_need_a_signed_in_member(help_articles, client):
    response = client.get(reverse("helpcenter:article", args=["refunds"]))

    assert response.status_code == 302 and reverse("login") in response["Location"]


@pytest.mark.parametrize(
    ("url", "role", "slug"),
    [
        (lambda w: reverse("transactions:dashboard"), Role.STAFF, "dashboard-and-transactions"),
        (lambda w: reverse("transactions:transaction_detail", args=[w["transaction"].pk]), Role.MANAGER, "dashboard-and-transactions"),
        (lambda w: reverse("patients:hub"), Role.STAFF, "patients-hub"),
        (lambda w: reverse("payouts:list"), Role.MANAGER, "payouts"),
        (lambda w: reverse("uploads:center"), Role.MANAGER, "upload-center"),
        (lambda w: reverse("transactions:collection_rules"), Role.MANAGER, "collection-rules"),
        (lambda w: reverse("ehr_connections:list"), Role.ADMINISTRATOR, "ehr-connections"),
        (lambda w: reverse("organization_profile"), Role.ADMINISTRATOR, "organization-profile"),
        (lambda w: reverse("mfa_security"), Role.STAFF, "security-settings"),
    ],
)
def test_help_for_this_page_opens_the_pages_own_article(url, role, slug, help_articles, client, organization, location):
    member = MembershipFactory(organization=organization, role=role, locations=[location]).user
    world = {"transaction": paid_transaction(organization=organization, location=location, amount_cents=4500)}
    client.force_login(member)
    path = url(world)

    response = client.get(path)

    assert response.status_code == 200
    link = f'href="/help/articles/{slug}/?from={path.replace("/", "%2F")}"'
    assert link in response.content.decode()
    assert "Help for this page" in response.content.decode()
    assert help_page_links()[response.resolver_match.view_name] == slug


def test_a_page_without_an_article_links_to_the_help_center(help_articles, client, organization):
    member = MembershipFactory(organization=organization, role=Role.MANAGER).user
    client.force_login(member)

    response = client.get(reverse("transactions:ehr_posting_files"))

    assert response.status_code == 200
    assert "transactions:ehr_posting_files" not in help_page_links()
    assert 'href="/help/" class="help-link"' in response.content.decode()
