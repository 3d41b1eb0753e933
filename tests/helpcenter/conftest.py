import pytest

from helpcenter.articles import help_articles_sync


@pytest.fixture
def help_articles(db):
    """The Help Center's real articles (helpcenter/articles/*.md), synced as `make dev` does."""
    help_articles_sync()
