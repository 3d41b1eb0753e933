from django.apps import AppConfig


class EhrSyncConfig(AppConfig):
    name = "ehr_sync"
    verbose_name = "Patients and EHR mirror"
