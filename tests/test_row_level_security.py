"""The database enforces the tenant (issue 9, item 10; lumapay/tenant_rls.py).

PostgreSQL's row-level security keeps a query that forgets its organization filter to the
request's clinic, and to no clinic when none is set; the tests' own set-up runs as the owner
(like migrations and the operators' admin), the pages and tasks under test as ``lumapay_app``.
"""

import pytest
from celery import shared_task
from django.apps import apps
from django.db import IntegrityError, ProgrammingError, connection, transaction as db_transaction
from django.urls import reverse

from ehr_sync.models import Patient
from lumapay import tenant_rls
from lumapay.tenant_rls import (
    APP_ROLE,
    POLICY_NAME,
    all_organizations,
    current_scope,
    no_organization,
    organization_scope,
    OWNER,
)
from org_profile.enums import Role
from org_profile.models import Organization
from tests.factories import LocationFactory, MembershipFactory, OrganizationFactory, PatientFactory, PaymentRequestFactory
from transactions.enums import PaymentRequestKind
from transactions.links import payment_link_token
from transactions.models import DailyTotal, Transaction

pytestmark = pytest.mark.django_db


def _transaction(organization, **fields):
    location = LocationFactory(organization=organization)
    return Transaction.objects.create(
        organization=organization,
        patient=PatientFactory(organization=organization),
        location=location,
        kind=PaymentRequestKind.COPAY,
        billing_item="Office visit",
        amount_cents=2500,
        vendor=organization.payment_gateway,
        **fields,
    )


@pytest.fixture
def two_clinics():
    riverside = OrganizationFactory(name="Riverside Family Medicine")
    lakeside = OrganizationFactory(name="Lakeside Pediatrics")
    return riverside, _transaction(riverside), lakeside, _transaction(lakeside)


def _tables_with_an_organization() -> set[str]:
    tables = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.is_relation and field.related_model is Organization:
                tables.add(model._meta.db_table)
    return tables


def test_every_table_that_carries_an_organization_has_a_policy():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_name = 'organization_id'"
        )
        tables = {row[0] for row in cursor.fetchall()} | _tables_with_an_organization()
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
            "WHERE c.relrowsecurity AND p.polname = %s AND %s::regrole = ANY (p.polroles)",
            [POLICY_NAME, APP_ROLE],
        )
        protected = {row[0] for row in cursor.fetchall()}
    assert len(tables) >= 19
    assert tables - protected == set(), "add lumapay.tenant_rls.tenant_policy_sql for these tables in a migration"


def test_the_app_role_is_neither_superuser_nor_owner_nor_exempt():
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", [APP_ROLE])
        assert cursor.fetchone() == (False, False, False)
        cursor.execute("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", [APP_ROLE])
        assert cursor.fetchone() == (0,)


def test_a_query_without_an_organization_sees_and_writes_nothing(two_clinics):
    riverside, *_ = two_clinics
    with no_organization():
        assert Transaction.objects.count() == 0
        assert Patient.objects.count() == 0
        with pytest.raises(ProgrammingError, match="row-level security"), db_transaction.atomic():
            PatientFactory(organization=riverside)
    # The owner (migrations, the operators' admin) sees every clinic's.
    assert Transaction.objects.count() == 2


def test_an_organizations_scope_sees_and_writes_only_its_rows(two_clinics):
    riverside, riverside_payment, lakeside, lakeside_payment = two_clinics
    with organization_scope(riverside.pk):
        assert list(Transaction.objects.values_list("pk", flat=True)) == [riverside_payment.pk]
        assert Transaction.objects.filter(pk=lakeside_payment.pk).update(billing_item="changed") == 0
        with pytest.raises(ProgrammingError, match="row-level security"), db_transaction.atomic():
            PatientFactory(organization=lakeside)
        with all_organizations():
            assert Transaction.objects.count() == 2
        # Back in Riverside's scope once the reviewed cross-clinic step is over.
        assert Transaction.objects.count() == 1
    assert current_scope() == OWNER


@pytest.mark.urls("tests.rls_urls")
def test_a_staff_page_that_forgets_its_organization_filter_shows_only_its_clinic(client, two_clinics):
    riverside, riverside_payment, lakeside, lakeside_payment = two_clinics
    user = MembershipFactory(organization=riverside, role=Role.ADMINISTRATOR).user
    client.force_login(user)

    seen = client.get(reverse("forgetful_staff_page")).json()

    assert seen["transactions"] == [riverside_payment.pk]
    assert seen["patients"] == [riverside_payment.patient_id]
    assert current_scope() == OWNER  # the request left its scope behind


@pytest.mark.urls("tests.rls_urls")
def test_a_public_page_that_forgets_its_organization_filter_shows_nothing(client, two_clinics):
    seen = client.get(reverse("forgetful_public_page")).json()

    assert seen == {"transactions": [], "patients": []}


@pytest.mark.urls("tests.rls_urls")
def test_a_signed_in_user_without_an_organization_sees_nothing(client, two_clinics, django_user_model):
    user = MembershipFactory(organization=two_clinics[0], role=Role.STAFF, is_active=False).user
    client.force_login(user)

    seen = client.get(reverse("forgetful_public_page")).json()

    assert seen == {"transactions": [], "patients": []}


@shared_task
def _forgetful_task():
    return sorted(Transaction.objects.values_list("pk", flat=True))


def test_a_task_that_forgets_its_organization_sees_nothing(two_clinics):
    assert _forgetful_task.apply().get() == []
    assert _forgetful_task() == []


def test_a_pay_page_runs_in_its_clinics_scope(client, two_clinics):
    riverside, *_ = two_clinics
    payment_request = PaymentRequestFactory(
        organization=riverside, patient=PatientFactory(organization=riverside), location=LocationFactory(organization=riverside)
    )

    response = client.get(reverse("pay:verify", kwargs={"token": payment_link_token(payment_request)}))

    assert response.status_code == 200
    assert riverside.display_name in response.content.decode()


def test_the_daily_totals_trigger_works_as_the_app_role(two_clinics):
    riverside, *_ = two_clinics
    with organization_scope(riverside.pk):
        payment = _transaction(riverside)
        Transaction.objects.filter(pk=payment.pk).update(charged_cents=2500, status="succeeded")
    assert DailyTotal.objects.filter(organization=riverside, location=payment.location).exists()


def _session_role_and_organization(using_connection=connection):
    with using_connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_setting('lumapay.organization', true)")
        return cursor.fetchone()


def test_a_failed_transaction_inside_a_scope_leaves_the_connection_as_it_found_it(two_clinics):
    riverside, riverside_payment, *_ = two_clinics
    before = _session_role_and_organization()
    with pytest.raises(IntegrityError), db_transaction.atomic():
        with organization_scope(riverside.pk):
            Transaction.objects.create(**{**_fields_of(riverside_payment), "amount_cents": None})

    assert _session_role_and_organization() == before
    assert current_scope() == OWNER


def _fields_of(payment):
    return {
        "organization_id": payment.organization_id,
        "patient_id": payment.patient_id,
        "location_id": payment.location_id,
        "kind": payment.kind,
        "billing_item": payment.billing_item,
        "amount_cents": payment.amount_cents,
        "vendor": payment.vendor,
    }


def test_in_the_web_server_and_workers_a_new_connection_starts_with_no_organization(monkeypatch):
    # lumapay.wsgi and the Celery worker call serve_with_tenant_role(); a fresh connection of such
    # a process, outside any request or task, is the app's role with no organization.
    monkeypatch.setattr(tenant_rls, "_base", tenant_rls.NO_ORGANIZATION)
    fresh = connection.copy()
    try:
        assert _session_role_and_organization(fresh)[0] == APP_ROLE
        assert _session_role_and_organization(fresh)[1] in ("", None)
    finally:
        fresh.close()


# -- patient search under row-level security ------------------------------------------------------


@pytest.fixture
def patient_searches():
    """Every patient search (``ILIKE`` on the patients' table) the code under test runs: the role
    that ran it (``current_user`` on the same connection, at that moment) and its parameters. Under
    the app's role PostgreSQL cannot use the trigram indexes for ``ILIKE`` (not LEAKPROOF; 150 ms
    instead of 5 on a clinic of 160,000 patients), so the search must run as the owner, with its
    organization in its own WHERE."""
    searches = []

    def record(execute, sql, params, many, context):
        if "ILIKE" in sql and '"ehr_sync_patient"' in sql:
            cursor = context["cursor"]
            cursor.execute("SELECT current_user")
            searches.append({"role": cursor.fetchone()[0], "sql": sql, "params": list(params or ())})
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield searches


def _ran_as_the_owner_within(searches, organization):
    assert searches, "no patient search ran"
    for search in searches:
        assert search["role"] != APP_ROLE, search
        assert '"ehr_sync_patient"."organization_id" = %s' in search["sql"], search
        assert organization.pk in search["params"], search
    return True


def test_a_hub_search_finds_its_patients_with_the_trigram_index_and_only_its_clinics(client, two_clinics, patient_searches):
    riverside, _, lakeside, _ = two_clinics
    PatientFactory(organization=riverside, first_name="Maria", last_name="Lopez")
    PatientFactory(organization=lakeside, first_name="Maria", last_name="Lopezz")
    client.force_login(MembershipFactory(organization=riverside, role=Role.ADMINISTRATOR).user)

    response = client.get(reverse("patients:hub"), {"q": "maria lopez"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "Lopez" in body and "Lopezz" not in body
    # The ids as the owner, filtered by the request's organization (patient_ids_search); the page's
    # patients then read by id under row-level security.
    assert _ran_as_the_owner_within(patient_searches, riverside)
    assert current_scope() == OWNER


def test_the_dashboards_patient_filter_uses_the_trigram_index_and_only_its_clinic(client, two_clinics, patient_searches):
    riverside, riverside_payment, lakeside, lakeside_payment = two_clinics
    for payment in (riverside_payment, lakeside_payment):
        Patient.objects.filter(pk=payment.patient_id).update(first_name="Maria", last_name="Lopez")
    client.force_login(MembershipFactory(organization=riverside, role=Role.ADMINISTRATOR).user)

    response = client.get(reverse("transactions:dashboard"), {"q": "lopez"})

    assert response.status_code == 200
    assert [row.pk for row in response.context["page"].object_list] == [riverside_payment.pk]
    assert _ran_as_the_owner_within(patient_searches, riverside)


def test_as_the_owner_a_patient_search_can_use_its_trigram_index_and_as_the_app_role_it_cannot(organization):
    # Why the search runs as the owner: the same query, planned with sequential scans off.
    from ehr_sync.selectors import patient_search_condition

    PatientFactory(organization=organization, first_name="Maria", last_name="Lopez")
    queryset = Patient.objects.filter(patient_search_condition("lopez"))

    def plan():
        with db_transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            return queryset.explain()

    assert "patient_search_unaccent_trgm" in plan()
    with organization_scope(organization.pk):
        assert "patient_search_unaccent_trgm" not in plan()


def test_the_owners_patient_id_lookup_keeps_to_the_organization_it_is_given(two_clinics):
    from ehr_sync.selectors import patient_ids_search

    riverside, riverside_payment, lakeside, lakeside_payment = two_clinics
    for payment in (riverside_payment, lakeside_payment):
        Patient.objects.filter(pk=payment.patient_id).update(first_name="Maria", last_name="Lopez")
    # Even inside another clinic's scope, the query's own filter decides (it never widens).
    with organization_scope(lakeside.pk):
        assert patient_ids_search(organization=riverside, query="lopez") == [riverside_payment.patient_id]
        assert current_scope().organization_id == lakeside.pk
    with pytest.raises(ValueError):
        patient_ids_search(organization=Organization(), query="lopez")


# -- sign-in events: recorded in each clinic of the person, whichever the request works for -----------


@pytest.fixture
def member_of_both(two_clinics):
    from django.test import Client

    riverside, _, lakeside, _ = two_clinics
    user = MembershipFactory(organization=riverside, role=Role.STAFF).user
    user.set_password("correct horse battery")
    user.save()
    MembershipFactory(organization=lakeside, role=Role.STAFF, user=user)
    return user, Client(REMOTE_ADDR="203.0.113.9")


def _actions_by_clinic(riverside, lakeside):
    from lumapay.models import AuditEvent

    return {
        clinic.name: list(AuditEvent.objects.filter(organization=clinic).values_list("action", flat=True))
        for clinic in (riverside, lakeside)
    }


def test_a_lockout_on_the_sign_in_page_is_audited_in_each_clinic_of_the_member(two_clinics, member_of_both):
    from lumapay.enums import AuditAction

    riverside, _, lakeside, _ = two_clinics
    user, browser = member_of_both
    # The sign-in page has no organization: its request sees no clinic's rows.
    for _ in range(10):
        browser.post(reverse("login"), {"username": user.email, "password": "wrong"})

    assert _actions_by_clinic(riverside, lakeside) == {
        riverside.name: [AuditAction.SIGN_IN_LOCKED],
        lakeside.name: [AuditAction.SIGN_IN_LOCKED],
    }
    assert current_scope() == OWNER


def test_a_wrong_second_step_code_is_audited_in_each_clinic_of_the_member(two_clinics, member_of_both):
    from lumapay.enums import AuditAction
    from tests.two_step import authenticator_for, totp_code

    riverside, _, lakeside, _ = two_clinics
    user, browser = member_of_both
    device = authenticator_for(user)
    browser.post(reverse("login"), {"username": user.email, "password": "correct horse battery"})

    # The code page runs in the member's current clinic (Lakeside sorts first); the event of the
    # other is written in its own clinic's scope.
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"
    assert browser.post(reverse("mfa_verify"), {"code": wrong}).status_code == 400

    assert _actions_by_clinic(riverside, lakeside) == {
        riverside.name: [AuditAction.MFA_CODE_FAILED],
        lakeside.name: [AuditAction.MFA_CODE_FAILED],
    }
