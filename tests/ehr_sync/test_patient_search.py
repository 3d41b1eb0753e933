from django.db import connection

from ehr_sync.models import Patient
from ehr_sync.selectors import patient_search_condition, patients_search

from ..factories import PatientFactory


def _names(queryset):
    return [f"{p.first_name} {p.last_name}" for p in queryset]


def test_search_by_name_words_in_any_order_ignoring_case(organization):
    # given patients with similar names
    PatientFactory(organization=organization, first_name="Maria", last_name="Lopez")
    PatientFactory(organization=organization, first_name="Mario", last_name="Lopez")
    PatientFactory(organization=organization, first_name="Maria", last_name="Smith")

    # when staff search for parts of names
    # then every word must match a name (or the EHR id), sorted by last then first name
    assert _names(patients_search(organization=organization, query="maria LOP")) == ["Maria Lopez"]
    assert _names(patients_search(organization=organization, query="lopez")) == ["Maria Lopez", "Mario Lopez"]
    assert _names(patients_search(organization=organization, query="smi mar")) == ["Maria Smith"]
    assert _names(patients_search(organization=organization, query="")) == ["Maria Lopez", "Mario Lopez", "Maria Smith"]


def test_search_by_ehr_id_email_and_phone(organization):
    # given patients with EHR ids, e-mail addresses and phones
    PatientFactory(
        organization=organization, first_name="Ana", last_name="Ruiz", external_ehr_id="MRN-77812",
        email="ana.ruiz@mail.example", mobile_phone="+12175550142",
    )
    PatientFactory(
        organization=organization, first_name="Bo", last_name="Chen", external_ehr_id="MRN-10001",
        email="bo@mail.example", mobile_phone="+13125550199",
    )

    # when staff search by each of them, typed the way people type
    # then the right patient is found
    assert _names(patients_search(organization=organization, query="mrn-778")) == ["Ana Ruiz"]
    assert _names(patients_search(organization=organization, query="77812")) == ["Ana Ruiz"]
    assert _names(patients_search(organization=organization, query="ANA.RUIZ@mail")) == ["Ana Ruiz"]
    assert _names(patients_search(organization=organization, query="(217) 555-0142")) == ["Ana Ruiz"]
    assert _names(patients_search(organization=organization, query="312 555")) == ["Bo Chen"]
    assert _names(patients_search(organization=organization, query="nobody")) == []


def test_search_treats_like_wildcards_as_text(organization):
    # given a patient whose names contain no percent sign or underscore
    PatientFactory(organization=organization, first_name="Maria", last_name="Lopez", external_ehr_id="MRN1")

    # when staff type a wildcard character
    # then it matches only itself
    assert _names(patients_search(organization=organization, query="%")) == []
    assert _names(patients_search(organization=organization, query="M_ria")) == []


def test_search_never_leaves_the_organization(organization, other_organization):
    # given a Maria Lopez in another organization only
    PatientFactory(organization=other_organization, first_name="Maria", last_name="Lopez")

    # when this organization searches for her
    # then she is not found
    assert _names(patients_search(organization=organization, query="maria lopez")) == []
    assert patients_search(organization=organization).count() == 0


def test_search_ignores_accents_and_case_both_ways(organization):
    # given patients whose names carry accents, and one whose name does not
    PatientFactory(organization=organization, first_name="Jorge", last_name="García")
    PatientFactory(organization=organization, first_name="María", last_name="García")
    PatientFactory(organization=organization, first_name="José", last_name="Núñez")
    PatientFactory(organization=organization, first_name="Renee", last_name="Garcia")

    # when staff type without accents, with them, or in capitals
    # then the same patients are found
    garcias = ["Jorge García", "María García", "Renee Garcia"]
    assert sorted(_names(patients_search(organization=organization, query="garcia"))) == garcias
    assert sorted(_names(patients_search(organization=organization, query="GARCÍA"))) == garcias
    assert _names(patients_search(organization=organization, query="jose nunez")) == ["José Núñez"]
    assert _names(patients_search(organization=organization, query="NÚÑEZ")) == ["José Núñez"]
    assert _names(patients_search(organization=organization, query="maria garcía")) == ["María García"]


def test_search_accepts_the_hub_format_last_comma_first_and_first_last(organization):
    # given two García patients
    PatientFactory(organization=organization, first_name="Jorge", last_name="García")
    PatientFactory(organization=organization, first_name="María", last_name="García")

    # when staff type the name as the Hub shows it ("Last, First") or as it is said ("First Last")
    # then the one patient is found
    for query in ("Garcia, Jorge", "García, Jorge", "garcia,jorge", "Jorge Garcia", "jorge  garcía", "Garc, Jor"):
        assert _names(patients_search(organization=organization, query=query)) == ["Jorge García"], query
    assert _names(patients_search(organization=organization, query="Garcia, Ana")) == []


def test_name_and_ehr_id_search_can_use_the_trigram_index(organization):
    # given a name search compiled to SQL
    PatientFactory(organization=organization, first_name="Maria", last_name="Lopez")
    queryset = Patient.objects.filter(patient_search_condition("lopez"))
    sql, _ = queryset.query.sql_with_params()

    # then it compares the unaccented text with the unaccented pattern, without UPPER() (which the
    # gin_trgm_ops index cannot serve), and PostgreSQL plans it on patient_search_unaccent_trgm
    assert "UPPER(" not in sql
    assert "lumapay_unaccent(" in sql and "ILIKE lumapay_unaccent(" in sql
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
    assert "patient_search_unaccent_trgm" in plan


def test_the_unaccent_wrapper_is_immutable(db):
    # an index expression must be IMMUTABLE; unaccent() itself is only STABLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT provolatile FROM pg_proc WHERE proname = 'lumapay_unaccent'")
        assert cursor.fetchall() == [("i",)]
        cursor.execute("SELECT lumapay_unaccent('García Núñez, Françoise')")
        assert cursor.fetchone() == ("Garcia Nunez, Francoise",)
