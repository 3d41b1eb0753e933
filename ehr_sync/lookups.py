"""``column = ANY(%s)``: one array parameter for a long list of ids.

A sync looks up thousands of EHR ids at a time (the page it just read, the batch it is about to
write). ``__in`` makes one placeholder per id, and Django and psycopg handle each one in Python;
an array is one parameter, and PostgreSQL plans both the same way (an ``= ANY`` on an array).
Use it as a filter expression: ``Patient.objects.filter(AnyOf(F("external_ehr_id"), ids))``.
"""

from __future__ import annotations

from django.db.models import Lookup


class AnyOf(Lookup):
    lookup_name = "any"
    # The list goes to the database as it is (the field would turn it into one string).
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return "%s", [list(value)]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]
