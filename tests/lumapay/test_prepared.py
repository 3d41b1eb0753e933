"""``prepared_rows``: a read prepared on the connection, under row-level security like any other."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lumapay.prepared import prepared_rows
from lumapay.tenant_rls import organization_scope

from ..factories import LocationFactory

pytestmark = pytest.mark.django_db

SQL = "SELECT name FROM org_profile_location WHERE name LIKE %s ORDER BY name"


def test_the_statement_is_prepared_and_each_scope_sees_only_its_organizations_rows(organization, other_organization):
    LocationFactory(organization=organization, name="Riverside clinic")
    LocationFactory(organization=other_organization, name="Lakeside clinic")

    # when the same read runs in one clinic's scope, then in the other's
    with organization_scope(organization.pk), CaptureQueriesContext(connection) as captured:
        first = prepared_rows(SQL, ["%clinic"])
    with organization_scope(other_organization.pk):
        second = prepared_rows(SQL, ["%clinic"])
        again = prepared_rows(SQL, ["%clinic"])

    # then each saw its own row only, the prepared plan notwithstanding
    assert first == [("Riverside clinic",)]
    assert second == again == [("Lakeside clinic",)]
    # the read was logged like any query, its values in place (as Django's own cursors log them)
    [logged] = [query["sql"] for query in captured.captured_queries if "org_profile_location" in query["sql"]]
    assert logged == "SELECT name FROM org_profile_location WHERE name LIKE '%clinic' ORDER BY name"
    # and the connection holds it prepared
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%org_profile_location%"])
        assert cursor.fetchone()[0] == 1


def test_named_parameters(organization):
    LocationFactory(organization=organization, name="Downtown")

    with organization_scope(organization.pk):
        assert prepared_rows("SELECT name FROM org_profile_location WHERE name = %(name)s", {"name": "Downtown"}) == [
            ("Downtown",)
        ]
