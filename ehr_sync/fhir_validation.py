"""Checking FHIR resources against fhir.resources' R4B models, beside the sync rather than inside it.

The check is pure CPU (pydantic and fhir.resources' own validators, ~0.1–0.25 ms a resource) and
the FHIR sync otherwise waits on the EHR and on PostgreSQL, so a sync hands its resources to a small
pool of processes in chunks (``ResourceChecker``): the pool checks the next chunks while the sync maps
and writes the ones already checked and the next page downloads. Every resource is still checked
whole by the same R4B model; only where it happens changes. A chunk too small to be worth the trip
(an incremental sync's few changed records) is checked in the sync's own process.

This module imports neither Django nor the models: the pool's processes need only fhir.resources.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import billiard
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .records import RecordProblem

# Resources per chunk sent to the pool, and chunks a sync keeps in flight ahead of what it writes.
CHUNK_RESOURCES = 250
CHUNKS_AHEAD = 6
# A chunk smaller than this is checked in the sync's own process (the round trip would cost more).
SMALL_CHUNK = 40
# The pool's size: ``FHIR_VALIDATION_PROCESSES`` (0 checks everything in the sync's own process);
# by default one process, for the 2 cores the sync shares with PostgreSQL and the web workers.
DEFAULT_PROCESSES = 1

_KINDS = {"Patient": "patient", "Appointment": "appointment", "Coverage": "copay", "Account": "balance"}
_models: dict[str, type] = {}


def resource_reference(resource: dict) -> str:
    """"Patient/8f2c…/_history/3": the resource as the EHR names it, for a rejection."""
    version = (resource.get("meta") or {}).get("versionId")
    base = f"{resource['resourceType']}/{resource.get('id', '')}"
    return f"{base}/_history/{version}" if version else base


def resource_problem(resource: dict) -> RecordProblem | None:
    """The first way ``resource`` breaks the R4 rules (fhir.resources' R4B model), or None."""
    resource_type = resource.get("resourceType") or ""
    if resource_type not in _models:
        _models[resource_type] = get_fhir_model_class(resource_type)
    kind = _KINDS.get(resource_type, resource_type.lower())
    try:
        _models[resource_type].model_validate(resource)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
        value = first.get("input")
        return RecordProblem(
            kind=kind,
            reference=resource_reference(resource),
            field=location or resource_type,
            value="" if isinstance(value, (dict, list)) or value is None else str(value),
            reason=f"Not a valid FHIR R4 {resource_type}: {first.get('msg', 'invalid')} (at {location or resource_type}).",
        )
    return None


def resources_problems(resources: Sequence[dict]) -> list[RecordProblem | None]:
    """Each resource's problem (or None), in order: what a pool process does with one chunk."""
    return [resource_problem(resource) for resource in resources]


# -- the pool ----------------------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_pid = 0
_pool_refused_pid = 0
_pool_lock = threading.Lock()


def _processes() -> int:
    try:
        return max(int(os.environ.get("FHIR_VALIDATION_PROCESSES", DEFAULT_PROCESSES)), 0)
    except ValueError:
        return DEFAULT_PROCESSES


def _pool_get() -> ProcessPoolExecutor | None:
    """The process's pool, started on first use and kept for the next syncs (a worker runs many);
    None when checking stays in this process."""
    global _pool, _pool_pid
    processes = _processes()
    if not processes or _pool_refused_pid == os.getpid():
        return None
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            # fork: the children start at once with fhir.resources already imported; they run only
            # resources_problems (no database, no HTTP), so what the parent holds open does not matter.
            # billiard's context (Celery's own multiprocessing): a Celery prefork worker's child is a
            # daemon, which the standard library forbids to have children; billiard allows it, so a
            # sync run by a worker gets its pool too.
            _pool = ProcessPoolExecutor(
                max_workers=processes, mp_context=billiard.get_context("fork"), initializer=_exit_with_parent
            )
            _pool_pid = os.getpid()
        return _pool


def _pool_drop(pool: ProcessPoolExecutor, *, for_good: bool = False) -> None:
    global _pool, _pool_refused_pid
    with _pool_lock:
        if _pool is pool:
            _pool = None
        if for_good:
            _pool_refused_pid = os.getpid()
    pool.shutdown(wait=False, cancel_futures=True)


def _exit_with_parent() -> None:
    """A pool process ends when the process that made it ends, however it ends: a Celery child
    replaced after its tasks, or killed, leaves no checker behind (Linux's PR_SET_PDEATHSIG). The
    signal follows the *thread* that started it: a pool started in a thread that then ends (a
    development server's request) is lost, and the next sync finds it broken and starts another or
    checks in its own process (``BrokenProcessPool`` below): it costs time, never a check."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the pool is shut down at exit (below) and by Celery's process shutdown


def pool_stop() -> None:
    """Shut this process's pool down (at exit; and when a Celery worker process shuts down, as
    billiard's children end without running ``atexit``: ehr_sync/tasks.py)."""
    _pool_stop()


@atexit.register
def _pool_stop() -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.shutdown(wait=False, cancel_futures=True)


class _Done:
    """A chunk checked in this process, with a Future's ``result``."""

    def __init__(self, problems: list[RecordProblem | None]):
        self.problems = problems

    def result(self) -> list[RecordProblem | None]:
        return self.problems

    def done(self) -> bool:
        return True

    def cancel(self) -> bool:
        return False


class ResourceChecker:
    """Checks a search's resources in chunks, in order, a few chunks ahead of their reader.

    ``add`` takes one resource; ``ready`` gives back, oldest first, the chunks whose turn has come
    (all of them with ``everything=True``): each resource with its problem or None."""

    def __init__(self, *, chunk_resources: int | None = None, chunks_ahead: int | None = None):
        self.chunk_resources = chunk_resources or CHUNK_RESOURCES
        self.chunks_ahead = CHUNKS_AHEAD if chunks_ahead is None else chunks_ahead
        self.chunk: list[dict] = []
        self.pending: list[tuple[list[dict], Future | _Done]] = []

    def add(self, resource: dict) -> None:
        self.chunk.append(resource)
        if len(self.chunk) >= self.chunk_resources:
            self._submit()

    def _submit(self) -> None:
        chunk, self.chunk = self.chunk, []
        if not chunk:
            return
        pool = _pool_get() if len(chunk) >= SMALL_CHUNK else None
        if pool is not None:
            try:
                self.pending.append((chunk, pool.submit(resources_problems, chunk)))
                return
            except BrokenProcessPool:
                _pool_drop(pool)
            except (AssertionError, OSError, RuntimeError):
                # No processes to be had here (a daemonic worker may not start any; out of
                # resources): this process checks its resources itself from now on.
                _pool_drop(pool, for_good=True)
        self.pending.append((chunk, _Done(resources_problems(chunk))))

    def ready(self, *, everything: bool = False):
        if everything:
            self._submit()
        while self.pending and (everything or len(self.pending) > self.chunks_ahead):
            if not self.pending[0][1].done():
                self._help()
            chunk, future = self.pending.pop(0)
            try:
                problems = future.result()
            except BrokenProcessPool:
                # A pool process died (killed, out of memory): check this chunk here and start a new pool.
                pool = _pool
                if pool is not None:
                    _pool_drop(pool)
                problems = resources_problems(chunk)
            yield from zip(chunk, problems)

    def _help(self) -> None:
        """Rather than wait for the pool, check here the newest chunk it has not started yet."""
        for position in range(len(self.pending) - 1, 0, -1):
            chunk, future = self.pending[position]
            if isinstance(future, Future) and future.cancel():
                self.pending[position] = (chunk, _Done(resources_problems(chunk)))
                return

    def cancel(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending, self.chunk = [], []
