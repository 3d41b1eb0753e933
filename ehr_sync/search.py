"""The text a patient search reads, without accents: ``lumapay_unaccent(first || ' ' || last || ' ' || EHR id)``.

``lumapay_unaccent`` is an IMMUTABLE SQL wrapper around PostgreSQL's ``unaccent`` extension
(migration ``ehr_sync.0003``): ``unaccent(text)`` itself is only STABLE (it reads its dictionary
through the search path), and an index expression must be immutable. The wrapper names the
dictionary and the schema, so its result cannot change with the search path. A trigram GIN index on
the expression below (``patient_search_unaccent_trgm``) answers ``ILIKE '%…%'`` on it, and every
search (the Hub, the dashboard's patient filter) compares both sides through the wrapper, so
"garcia", "GARCÍA" and "García" find the same patients.
"""

from __future__ import annotations

from django.db.models import CharField, F, Func, Lookup, TextField, Value
from django.db.models.functions import Concat

UNACCENT_FUNCTION = "lumapay_unaccent"


class Unaccent(Func):
    function = UNACCENT_FUNCTION
    output_field = TextField()


def patient_search_text() -> Unaccent:
    """The expression the index holds and every name search reads (same SQL in both places)."""
    return Unaccent(
        Concat(F("first_name"), Value(" "), F("last_name"), Value(" "), F("external_ehr_id"), output_field=CharField())
    )


class ContainsUnaccented(Lookup):
    """``lhs ILIKE lumapay_unaccent(pattern)``: the pattern loses its accents in SQL, through the
    same function as the indexed text (PostgreSQL folds it to a constant when it plans the query).
    Used as an expression, never registered on a field."""

    lookup_name = "contains_unaccented"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} ILIKE {UNACCENT_FUNCTION}({rhs})", [*lhs_params, *rhs_params]
