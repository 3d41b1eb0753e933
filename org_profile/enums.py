from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMINISTRATOR = "administrator", _("Administrator")
    MANAGER = "manager", _("Manager")
    STAFF = "staff", _("Sub-account user")


class PaymentGateway(models.TextChoices):
    SANDBOX = "sandbox", _("Sandbox (test payments only)")
    STRIPE = "stripe", _("Stripe")


class BusinessType(models.TextChoices):
    """What kind of business the clinic is, in Stripe's words (Account.business_type)."""

    COMPANY = "company", _("Company")
    INDIVIDUAL = "individual", _("Individual (sole proprietor)")
    NON_PROFIT = "non_profit", _("Non-profit organization")
    GOVERNMENT_ENTITY = "government_entity", _("Government entity")


class IndustryCode(models.TextChoices):
    """Healthcare merchant category codes (MCC) a clinic may be filed under (Stripe's
    business_profile.mcc; card networks use it to classify the clinic's charges)."""

    DOCTORS = "8011", _("8011 · Doctors and physicians")
    DENTISTS = "8021", _("8021 · Dentists and orthodontists")
    OSTEOPATHS = "8031", _("8031 · Osteopaths")
    CHIROPRACTORS = "8041", _("8041 · Chiropractors")
    OPTOMETRISTS = "8042", _("8042 · Optometrists and ophthalmologists")
    OPTICIANS = "8043", _("8043 · Opticians and eyeglasses")
    PODIATRISTS = "8049", _("8049 · Podiatrists and chiropodists")
    NURSING = "8050", _("8050 · Nursing and personal care facilities")
    HOSPITALS = "8062", _("8062 · Hospitals")
    LABORATORIES = "8071", _("8071 · Medical and dental laboratories")
    MEDICAL_SERVICES = "8099", _("8099 · Medical services and health practitioners")
    AMBULANCE = "4119", _("4119 · Ambulance services")
    HEARING_AIDS = "5975", _("5975 · Hearing aids")
