"""Patient search without accents or case: the ``unaccent`` extension, an IMMUTABLE wrapper around
it, and a trigram GIN index on the searched text through the wrapper (ehr_sync/search.py says why
the wrapper). The index replaces the trigram index on the bare columns, which no search reads now.

Creating an extension needs a superuser or, on PostgreSQL 13+, a database owner for trusted ones
(unaccent and pg_trgm are trusted): the development server, the test database and the embedded
PostgreSQL of `make test` all qualify.
"""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import UnaccentExtension
from django.db import migrations, models

import ehr_sync.search

CREATE_WRAPPER = """
CREATE OR REPLACE FUNCTION lumapay_unaccent(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
"""
DROP_WRAPPER = "DROP FUNCTION IF EXISTS lumapay_unaccent(text)"


class Migration(migrations.Migration):
    dependencies = [
        ("ehr_sync", "0002_initial"),
        ("org_profile", "0003_stripe_connect"),
    ]

    operations = [
        UnaccentExtension(),
        migrations.RunSQL(CREATE_WRAPPER, DROP_WRAPPER),
        migrations.RemoveIndex(
            model_name="patient",
            name="patient_search_trgm",
        ),
        migrations.AddIndex(
            model_name="patient",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    ehr_sync.search.Unaccent(
                        django.db.models.functions.text.Concat(
                            models.F("first_name"), models.Value(" "), models.F("last_name"), models.Value(" "),
                            models.F("external_ehr_id"), output_field=models.CharField(),
                        )
                    ),
                    name="gin_trgm_ops",
                ),
                name="patient_search_unaccent_trgm",
            ),
        ),
    ]
