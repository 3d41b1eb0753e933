"""How long a sign-in lasts: signed out after the organization's idle timeout without activity,
and ``SESSION_MAX_AGE_HOURS`` after signing in however active. Enforced here, on the server, for
every page, the operators' admin included; static/js/session.js only warns a minute before.

What counts as activity: a page the member opens, a form they send, a search they type, and the
"Stay signed in" keep-alive. What does not: requests a page makes by itself (the export
progress poll, the warning script asking how long is left). Those carry the ``LumaPay-Background``
header, or reach a view marked ``background_request``.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

# Unix times in the session.
SIGNED_IN_AT = "signed_in_at"
LAST_ACTIVITY_AT = "last_activity_at"
AUTHENTICATED_AT = "authenticated_at"

BACKGROUND_HEADER = "LumaPay-Background"
# Activity is written to the session at most this often (a write per page otherwise).
ACTIVITY_WRITE_EVERY_SECONDS = 10


def background_request(view):
    """Mark a view whose requests a page makes by itself: they never keep a session alive."""
    view.background_request = True
    return view


def session_json(view):
    """Mark a view that answers scripts in JSON: a signed-out session gets 401 JSON, not a redirect."""
    view.session_json = True
    return view


def session_started(request) -> None:
    """Stamp a new sign-in (django.contrib.auth's ``user_logged_in``): its start, its last
    activity and its last password check are now."""
    now = int(time.time())
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_ACTIVITY_AT] = now
    request.session[AUTHENTICATED_AT] = now


def password_confirmed(request) -> None:
    """The member typed their password again (the re-authentication page)."""
    request.session[AUTHENTICATED_AT] = int(time.time())


def seconds_since_authenticated(request) -> float:
    return time.time() - request.session.get(AUTHENTICATED_AT, 0)


def idle_timeout_seconds(request) -> int:
    """The current organization's idle timeout; operators outside any organization get
    ``SESSION_IDLE_TIMEOUT_MINUTES``."""
    if settings.SESSION_IDLE_TIMEOUT_SECONDS_OVERRIDE:
        return settings.SESSION_IDLE_TIMEOUT_SECONDS_OVERRIDE
    organization = getattr(request, "organization", None)
    if organization:
        return organization.idle_timeout_minutes * 60
    return settings.SESSION_IDLE_TIMEOUT_MINUTES * 60


def idle_seconds_left(request) -> int:
    last = request.session.get(LAST_ACTIVITY_AT, time.time())
    return max(0, int(idle_timeout_seconds(request) - (time.time() - last)))


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class SessionTimeoutMiddleware:
    """Signs out a session idle past its organization's timeout, or older than
    ``SESSION_MAX_AGE_HOURS``, and records activity. Placed after the organization middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.session_activity = False
        response = self.get_response(request)
        if request.session_activity and request.user.is_authenticated:
            now = int(time.time())
            if now - request.session.get(LAST_ACTIVITY_AT, 0) >= ACTIVITY_WRITE_EVERY_SECONDS:
                request.session[LAST_ACTIVITY_AT] = now
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        session = request.session
        now = time.time()
        if SIGNED_IN_AT not in session:
            # A session from before these stamps existed: it starts now.
            session_started(request)
        reason = None
        if now - session[SIGNED_IN_AT] > settings.SESSION_MAX_AGE_HOURS * 3600:
            reason = f"You were signed out {settings.SESSION_MAX_AGE_HOURS} hours after signing in. Sign in again to continue."
        else:
            timeout = idle_timeout_seconds(request)
            if now - session.get(LAST_ACTIVITY_AT, now) > timeout:
                reason = f"You were signed out after {_minutes(timeout)} without activity."
        if reason is None:
            is_background = getattr(view_func, "background_request", False) or request.headers.get(BACKGROUND_HEADER)
            request.session_activity = not is_background
            return None
        return self._sign_out(request, view_func, reason)

    def _sign_out(self, request, view_func, reason):
        logout(request)
        # The organization middleware's answers belonged to the member just signed out.
        request.memberships, request.membership, request.organization = [], None, None
        messages.info(request, reason)
        login_url = reverse(settings.LOGIN_URL)
        if request.path == login_url or request.path == reverse("admin:login"):
            return None
        if getattr(view_func, "session_json", False):
            return JsonResponse({"signed_in": False, "login_url": login_url}, status=401)
        if getattr(request, "htmx", False):
            # The page the fragment belongs to is the one to come back to.
            current = request.htmx.current_url_abs_path or "/"
            return HttpResponseClientRedirect(f"{login_url}?{urlencode({'next': current})}")
        next_url = request.get_full_path() if request.method in ("GET", "HEAD") else same_site_referer(request)
        if request.path.startswith(reverse("admin:index")):
            return redirect_to_login(next_url, reverse("admin:login"))
        return redirect_to_login(next_url)


def same_site_referer(request) -> str:
    """The page a form was sent from, when it is one of ours; else the dashboard."""
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse(settings.LOGIN_REDIRECT_URL)


def session_keep_alive(request) -> None:
    """"Stay signed in": activity now, written at once."""
    request.session[LAST_ACTIVITY_AT] = int(time.time())
