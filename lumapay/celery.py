"""The Celery application: EHR syncs, copay automation, reminders, deliveries, reconciliation."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")

app = Celery("lumapay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
