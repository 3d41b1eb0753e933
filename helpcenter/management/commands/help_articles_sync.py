"""Copy the Help Center's Markdown articles (helpcenter/articles/*.md) into the database, where
they are searched. Idempotent: `make dev`'s seed runs it, and so should every deploy."""

from django.core.management.base import BaseCommand

from helpcenter.articles import help_articles_sync


class Command(BaseCommand):
    help = "Sync the Help Center's articles from helpcenter/articles/*.md into the database."

    def handle(self, *args, **options):
        counts = help_articles_sync()
        self.stdout.write(
            "Help Center articles: {created} created, {updated} updated, {unchanged} unchanged, {deleted} deleted.".format(**counts)
        )
