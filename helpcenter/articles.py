"""Help Center articles: Markdown files in ``helpcenter/articles/``, copied into ``HelpArticle`` by
``help_articles_sync`` and searched with PostgreSQL's full-text search.

Each file starts with front matter between two ``---`` lines::

    ---
    title: Refunds
    slug: refunds
    summary: Refund a payment in full or in part.
    pages: transactions:transaction_refund, transactions:transaction_detail
    roles: administrator, manager
    position: 20
    ---

``pages`` are the URL names of the staff pages the article helps with: the header's "Help for this
page" of each of them opens it (``help_page_links``). A URL name belongs to one article at most.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from markdown_it import MarkdownIt

from .help_models import HelpArticle

ARTICLES_DIR = Path(__file__).resolve().parent / "articles"
SEARCH_CONFIG = "english"
_FRONT_MATTER = re.compile(r"\A---\n(?P<head>.*?)\n---\n(?P<body>.*)\Z", re.S)
_LIST_KEYS = {"pages", "roles"}


class ArticleError(ValueError):
    """An article file that cannot be read as an article."""


@dataclass(frozen=True)
class ArticleSource:
    slug: str
    title: str
    summary: str
    body_markdown: str
    pages: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    position: int = 100
    sha256: str = field(default="", compare=False)


def markdown_renderer() -> MarkdownIt:
    # CommonMark with raw HTML off: a "<script>" in an article is shown as text, never run.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def article_parse(text: str, *, name: str = "article") -> ArticleSource:
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if not match:
        raise ArticleError(f"{name}: no front matter between two '---' lines.")
    head: dict[str, object] = {}
    for line in match["head"].splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ArticleError(f"{name}: front matter line without 'key: value': {line!r}")
        key, value = key.strip(), value.strip()
        if key in _LIST_KEYS:
            head[key] = tuple(part.strip() for part in value.strip("[]").split(",") if part.strip())
        else:
            head[key] = value
    for required in ("title", "slug"):
        if not head.get(required):
            raise ArticleError(f"{name}: front matter needs {required}.")
    if not re.fullmatch(r"[a-z0-9-]+", str(head["slug"])):
        raise ArticleError(f"{name}: slug must be lowercase letters, digits and hyphens.")
    return ArticleSource(
        slug=str(head["slug"]),
        title=str(head["title"]),
        summary=str(head.get("summary", "")),
        body_markdown=match["body"].strip() + "\n",
        pages=head.get("pages", ()),
        roles=head.get("roles", ()),
        position=int(head.get("position", 100)),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
    )


@lru_cache(maxsize=1)
def article_sources() -> tuple[ArticleSource, ...]:
    """Every article file, read once per process. Raises ArticleError for a bad file, a slug used
    twice, or a page claimed by two articles."""
    sources = [article_parse(path.read_text(encoding="utf-8"), name=path.name) for path in sorted(ARTICLES_DIR.glob("*.md"))]
    slugs, pages = set(), {}
    for source in sources:
        if source.slug in slugs:
            raise ArticleError(f"Two articles use the slug {source.slug!r}.")
        slugs.add(source.slug)
        for page in source.pages:
            if page in pages:
                raise ArticleError(f"{page!r} is claimed by {pages[page]!r} and {source.slug!r}.")
            pages[page] = source.slug
    return tuple(sources)


@lru_cache(maxsize=1)
def help_page_links() -> dict[str, str]:
    """URL name of a staff page → slug of its article. From the files, so the header needs no query."""
    return {page: source.slug for source in article_sources() for page in source.pages}


def markdown_render(markdown: str) -> str:
    return markdown_renderer().render(markdown)


def markdown_plain_text(markdown: str) -> str:
    """The words of an article without its markup, for search and its snippets."""
    tokens = markdown_renderer().parse(markdown)
    parts: list[str] = []
    for token in tokens:
        if token.type == "inline":
            parts.append(
                "".join(
                    " " if child.type in ("softbreak", "hardbreak") else child.content
                    for child in token.children or []
                    if child.type in ("text", "code_inline", "softbreak", "hardbreak")
                )
            )
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
    return "\n".join(part.strip() for part in parts if part.strip())


def help_articles_sync(*, sources: tuple[ArticleSource, ...] | None = None) -> dict[str, int]:
    """Make the table hold exactly the article files: create new ones, update changed ones, delete
    those whose file is gone, then recompute their search vectors in the database. Idempotent."""
    sources = article_sources() if sources is None else sources
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    now = timezone.now()
    with transaction.atomic():
        existing = {article.slug: article for article in HelpArticle.objects.select_for_update()}
        changed_ids = []
        for source in sources:
            values = {
                "title": source.title,
                "summary": source.summary,
                "body_markdown": source.body_markdown,
                "body_html": markdown_render(source.body_markdown),
                "body_text": markdown_plain_text(source.body_markdown),
                "pages": list(source.pages),
                "roles": list(source.roles),
                "position": source.position,
                "source_sha256": source.sha256,
                "synced_at": now,
            }
            article = existing.pop(source.slug, None)
            if article is None:
                changed_ids.append(HelpArticle.objects.create(slug=source.slug, **values).pk)
                counts["created"] += 1
            elif article.source_sha256 != source.sha256 or article.search_vector is None:
                HelpArticle.objects.filter(pk=article.pk).update(**values)
                changed_ids.append(article.pk)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        if existing:
            HelpArticle.objects.filter(pk__in=[article.pk for article in existing.values()]).delete()
            counts["deleted"] = len(existing)
        if changed_ids:
            HelpArticle.objects.filter(pk__in=changed_ids).update(
                search_vector=SearchVector("title", weight="A", config=SEARCH_CONFIG)
                + SearchVector("body_text", weight="B", config=SEARCH_CONFIG)
            )
    return counts


def help_articles_search(query_text: str, *, limit: int = 20) -> QuerySet[HelpArticle]:
    """Articles matching ``query_text`` (web-search syntax: words, "a phrase", -word, or), best
    first: a match in the title weighs more than one in the body. Each has ``rank`` and
    ``snippet``, the best passage of the body with the matched words between «mark» sentinels
    (``snippet_html`` turns them into <mark> after escaping the text)."""
    query = SearchQuery(query_text, search_type="websearch", config=SEARCH_CONFIG)
    return (
        HelpArticle.objects.filter(search_vector=query)
        .annotate(
            rank=SearchRank(F("search_vector"), query),
            snippet=SearchHeadline(
                "body_text",
                query,
                config=SEARCH_CONFIG,
                start_sel=SNIPPET_START,
                stop_sel=SNIPPET_STOP,
                max_words=35,
                min_words=15,
                max_fragments=2,
                fragment_delimiter=" … ",
            ),
        )
        .order_by("-rank", "position", "title")[:limit]
    )


# Sentinels PostgreSQL puts around matched words; the template escapes the snippet first, then
# turns them into <mark> (helpcenter/views_help.py), so an article's text can never inject HTML.
SNIPPET_START = "\u0002"
SNIPPET_STOP = "\u0003"
