"""gunicorn's settings for LumaPay's web server (read from the working directory: the image's /app).

The access log keeps no patient's details: searches put names, e-mail addresses and phone numbers
in query strings (the Hub's and the dashboard's ``q``, kept in the URL so a filtered view can be
bookmarked and shared), so every line shows the path without its query string, the referring page
(also a URL with a query) is left out, and a payment link's token is masked. ``PhiSafeAccessLogger``
redacts the atoms themselves, so a changed ``--access-logformat`` (even with %(r)s, %(q)s or
%(f)s) still cannot print them. See the README, "What never reaches a log".
"""

import os

from gunicorn.glogging import Logger

from lumapay.log_redaction import access_path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
accesslog = "-"
# Address, time, method, path (no query), protocol, status, bytes, duration, browser.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'


class PhiSafeAccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = access_path(environ.get("PATH_INFO") or "")
        atoms["U"] = path
        atoms["r"] = f"{environ.get('REQUEST_METHOD')} {path} {environ.get('SERVER_PROTOCOL')}"
        atoms["q"] = "-"
        atoms["f"] = "-"
        atoms["{referer}i"] = "-"
        return atoms


logger_class = PhiSafeAccessLogger
