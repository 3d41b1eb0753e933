"""The profile's secrets are encrypted with ORGANIZATION_PROFILE_KEYS (newest first): rotating to a
new key keeps them readable, and production refuses to store them without a key."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from lumapay.errors import ApplicationError
from org_profile.models import Organization, OrganizationPerson
from org_profile.profile import organization_legal_update, organization_person_add
from org_profile.profile_secrets import secret_decrypt, secret_encrypt

from .profile_support import EIN, PERSON

pytestmark = pytest.mark.django_db


def test_rotating_to_a_new_key_keeps_every_secret(organization, administrator, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ORGANIZATION_PROFILE_KEYS = [old]
    organization_legal_update(organization=organization, actor=administrator, data={"tax_id": EIN})
    person = organization_person_add(organization=organization, actor=administrator, data=PERSON)

    settings.ORGANIZATION_PROFILE_KEYS = [new, old]
    call_command("rotate_organization_profile_secrets", stdout=open("/dev/null", "w"))
    settings.ORGANIZATION_PROFILE_KEYS = [new]

    person.refresh_from_db()
    assert secret_decrypt(Organization.objects.get(pk=organization.pk).tax_id_encrypted) == EIN
    assert (secret_decrypt(person.dob_encrypted), secret_decrypt(person.ssn_last4_encrypted)) == ("1974-03-18", "0418")
    settings.ORGANIZATION_PROFILE_KEYS = [old]
    with pytest.raises(ApplicationError, match="ORGANIZATION_PROFILE_KEYS"):
        secret_decrypt(OrganizationPerson.objects.get().dob_encrypted)


def test_without_keys_production_refuses_and_development_derives_one(settings):
    settings.ORGANIZATION_PROFILE_KEYS = []
    settings.DEBUG = False
    with pytest.raises(ImproperlyConfigured, match="ORGANIZATION_PROFILE_KEYS"):
        secret_encrypt(EIN)
    settings.DEBUG = True
    assert secret_decrypt(secret_encrypt(EIN)) == EIN


def test_the_development_key_is_not_the_ehr_credentials_one(settings):
    from ehr_sync.credentials import credentials_encrypt

    settings.ORGANIZATION_PROFILE_KEYS = []
    settings.EHR_CREDENTIALS_KEYS = []
    settings.DEBUG = True
    token = credentials_encrypt({"password": "x"})
    with pytest.raises(ApplicationError):
        secret_decrypt(token)
