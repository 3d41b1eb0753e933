"""The beat schedule in settings names tasks the Celery app really has."""

from django.conf import settings

from lumapay.celery import app


def test_every_beat_entry_names_a_registered_task():
    # given the Celery app with the project's tasks loaded
    app.loader.import_default_modules()

    # when each scheduled task name is looked up
    missing = [entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] not in app.tasks]

    # then none is missing
    assert missing == []


def test_holds_for_missed_visits_are_released_every_minute():
    assert settings.CELERY_BEAT_SCHEDULE["authorizations-release-for-missed-visits"] == {
        "task": "transactions.tasks.authorizations_release_for_missed_visits",
        "schedule": 60,
    }
