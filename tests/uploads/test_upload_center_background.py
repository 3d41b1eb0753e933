"""A large file imports in the background in batches, behind a progress bar the page polls; a
second delivery of the task, or one after a worker died half-way, imports nothing twice."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ehr_sync.models import Patient
from uploads import services, tasks
from uploads.models import Upload

from .test_upload_center_flow import ALL_GOOD, THREE_BAD_ROWS, _send

pytestmark = pytest.mark.django_db

HTMX_POLL = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "upload-progress"}


@pytest.fixture
def queued(monkeypatch):
    """The tasks the import queues, held instead of run (a worker takes them in production)."""
    held = []
    monkeypatch.setattr(tasks.upload_import, "delay", held.append)
    return held


def test_the_valid_rows_import_in_batches_behind_a_progress_bar(
    client, manager, monkeypatch, queued, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "UPLOAD_BATCH_RECORDS", 2)
    client.force_login(manager)
    _send(client, THREE_BAD_ROWS)
    upload = Upload.objects.get()

    # When the manager imports the valid rows, the page shows the progress at 0 of 3
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})
    assert queued == [upload.pk]
    page = client.get(reverse("uploads:detail", args=[upload.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in page and "0 of 3 rows (0%)" in page
    poll = client.get(reverse("uploads:detail", args=[upload.pk]), **HTMX_POLL)
    assert "HX-Refresh" not in poll and "0 of 3 rows" in poll.content.decode()

    # When the worker runs the task
    tasks.upload_import(upload.pk)

    # Then the poll tells the page to show the result
    upload.refresh_from_db()
    assert (upload.status, upload.progress_rows, upload.import_run.created) == ("imported", 6, 3)
    poll = client.get(reverse("uploads:detail", args=[upload.pk]), **HTMX_POLL)
    assert poll["HX-Refresh"] == "true"
    # Three batches' worth of importer calls (2 + 1 valid, then the rejected rows) counted once each
    assert upload.import_run.received == 5


def test_a_second_delivery_of_the_task_imports_nothing_twice(client, manager, queued, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})

    tasks.upload_import(upload.pk)
    tasks.upload_import(upload.pk)

    upload.refresh_from_db()
    run = upload.import_run
    assert (upload.status, run.received, run.created, run.unchanged) == ("imported", 3, 3, 0)


def test_an_import_interrupted_after_a_batch_goes_on_from_the_next_one(
    client, manager, monkeypatch, queued, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "UPLOAD_BATCH_RECORDS", 2)
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})
    # As a worker that died after committing the first batch of two leaves it
    Upload.objects.filter(pk=upload.pk).update(progress_rows=2)

    tasks.upload_import(upload.pk)

    upload.refresh_from_db()
    assert upload.status == "imported"
    assert list(Patient.objects.values_list("external_ehr_id", flat=True)) == ["MRN-9"]
    assert (upload.import_run.received, upload.import_run.created) == (1, 1)


def test_an_import_that_cannot_read_its_file_fails_keeps_it_and_may_be_tried_again_or_discarded(
    client, manager, queued, django_capture_on_commit_callbacks
):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})
    # As if the stored file could no longer be read (the reading layer changed its rules meanwhile)
    Upload.objects.filter(pk=upload.pk).update(content=b"\xff\xfe not a CSV")

    tasks.upload_import(upload.pk)

    upload = Upload.objects.get(pk=upload.pk)
    assert (upload.status, Patient.objects.count()) == ("failed", 0)
    assert upload.error and bytes(upload.content) == b"\xff\xfe not a CSV"  # kept, to try again
    assert upload.import_run.status == "failed"
    page = client.get(reverse("uploads:detail", args=[upload.pk])).content.decode()
    assert "The import failed: " in page and "you may try again" in page
    # Tried again once the file reads (as restored here), it imports
    Upload.objects.filter(pk=upload.pk).update(content=ALL_GOOD)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})
    tasks.upload_import(upload.pk)
    upload.refresh_from_db()
    assert (upload.status, upload.error, Patient.objects.count()) == ("imported", "", 3)


def test_a_failed_import_may_be_discarded(client, manager, queued, django_capture_on_commit_callbacks):
    client.force_login(manager)
    _send(client, ALL_GOOD)
    upload = Upload.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("uploads:import", args=[upload.pk]), {"mode": "valid_rows"})
    Upload.objects.filter(pk=upload.pk).update(content=b"\xff\xfe not a CSV")
    tasks.upload_import(upload.pk)

    client.post(reverse("uploads:discard", args=[upload.pk]))
    upload.refresh_from_db()
    assert (upload.status, bytes(upload.content)) == ("discarded", b"")
