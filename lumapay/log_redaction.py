"""What never reaches a log: patients' details (names, dates of birth, e-mail addresses, phones)
and payment-link tokens.

Our own log lines name rows by id. What others write is trimmed here:

- a URL's query string (a Hub or dashboard search for a name, an e-mail or a phone) is dropped
  from the development server's request lines and Django's "Not Found: …" (``RequestPathFilter``)
  and from gunicorn's access
  log (gunicorn.conf.py uses ``access_path``); a payment link's token is masked there too;
- an exception's message (PostgreSQL's "Key (email)=(…) already exists", an SMTP server's
  "<maria@…>: recipient rejected") is left out of logged tracebacks (``PhiSafeFormatter``) and
  of Celery's lines about a failed or retried task (``CeleryTaskExceptionFilter``): the
  exception's type and the frames stay, which is what an operator needs to find the code.

Imported by the settings and by gunicorn.conf.py: it imports nothing of Django's.
"""

from __future__ import annotations

import logging
import re
import traceback

# /pay/<token>/… : the token is a bearer secret for the patient's page.
_PAY_TOKEN = re.compile(r"^(/pay/)[^/?#]+")
_CLASS_CALL = re.compile(r"^([A-Za-z_][\w.]*)\(")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
_RETRY = re.compile(r"^(Retry in \d+(?:\.\d+)?s)")


def access_path(path: str) -> str:
    """A request's path as logs may show it: no query string, a payment link's token masked."""
    path = path.split("?", 1)[0]
    return _PAY_TOKEN.sub(r"\1…", path)


def _request_line_redacted(line: str) -> str:
    parts = line.split(" ")
    if len(parts) == 3:
        return f"{parts[0]} {access_path(parts[1])} {parts[2]}"
    return access_path(line)


class RequestPathFilter(logging.Filter):
    """Paths in log lines as ``access_path`` shows them: the development server's request line
    ("GET /patients/?q=… HTTP/1.1") and Django's "Not Found: /pay/<token>/"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._redacted(arg) for arg in record.args)
        return True

    @staticmethod
    def _redacted(arg):
        if not isinstance(arg, str):
            return arg
        if arg.startswith("/"):
            return access_path(arg)
        if arg.split(" ", 1)[0] in _METHODS:
            return _request_line_redacted(arg)
        return arg


def exception_words(text: str) -> str:
    """An exception as logs may show it: its type ("IntegrityError"), or "Retry in 31s"."""
    for pattern in (_RETRY, _CLASS_CALL):
        match = pattern.match(text)
        if match:
            return match.group(1)
    return "(message withheld: it may name a patient)"


class CeleryTaskExceptionFilter(logging.Filter):
    """For ``celery.app.trace``: "Task … raised unexpected: ValueError" without the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and "exc" in record.args:
            record.args = {**record.args, "exc": exception_words(str(record.args["exc"]))}
        return True


class PhiSafeFormatter(logging.Formatter):
    """Tracebacks with their frames and the exception's type, without its message (which can
    quote a patient's e-mail or name). ``exception_messages=True`` (development) keeps them."""

    def __init__(self, *args, exception_messages: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exception_messages = exception_messages

    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have formatted the record first and cached its full traceback.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei) -> str:
        if self.exception_messages:
            return super().formatException(ei)
        exc_type, exc, tb = ei
        lines = ["Traceback (most recent call last):\n", *traceback.format_tb(tb)]
        seen = exc.__cause__ or exc.__context__ if exc is not None else None
        lines.append(f"{exc_type.__module__}.{exc_type.__qualname__} (message withheld: it may name a patient)")
        if seen is not None:
            lines.append(f"\n  caused by {type(seen).__module__}.{type(seen).__qualname__}")
        return "".join(lines)
