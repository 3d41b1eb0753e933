"""Sign-in lockout: django-axes configured for LumaPay's two sign-in forms (the staff sign-in and
/admin/'s), both of which go through ``django.contrib.auth.authenticate``.

Wrong passwords are counted per account (from any address) and per address (for any account),
each against its own limit (``SIGN_IN_MAX_FAILURES_PER_ACCOUNT``, ``…_PER_ADDRESS``), within the
cool-off (``SIGN_IN_LOCKOUT_MINUTES``). An account or address at its limit is refused, even with
the right password, until the cool-off has passed since its last failure or someone unlocks it.
The e-mail typed is counted whether or not an account has it, so the lock and its message say
nothing about which addresses exist.
"""

from __future__ import annotations

import datetime
import logging

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.db.models.functions import Lower
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

logger = logging.getLogger(__name__)


def lockout_message() -> str:
    minutes = settings.SIGN_IN_LOCKOUT_MINUTES
    return (
        "Sign-in is paused after too many failed attempts for this e-mail address or from this "
        f"network. Try again in {minutes} minutes, or ask your organization's LumaPay "
        "administrator to unlock your account."
    )


def username_of(request, credentials: dict | None) -> str | None:
    """The e-mail address typed, as it is counted: case and spaces ignored, as sign-in ignores them."""
    source = credentials if credentials else getattr(request, "POST", {})
    value = source.get("username") if source else None
    return value.strip().lower() if value else None


def _since() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(minutes=settings.SIGN_IN_LOCKOUT_MINUTES)


def account_failures(email: str) -> int:
    """Wrong passwords for this e-mail address within the cool-off, from every address."""
    return (
        AccessAttempt.objects.filter(username=email.strip().lower(), attempt_time__gte=_since()).aggregate(
            total=Sum("failures_since_start")
        )["total"]
        or 0
    )


def locked_emails(emails) -> set[str]:
    """Which of these e-mail addresses (lowercase) are locked out now."""
    wanted = {email.strip().lower() for email in emails}
    if not wanted:
        return set()
    rows = (
        AccessAttempt.objects.filter(username__in=wanted, attempt_time__gte=_since())
        .values("username")
        .annotate(total=Sum("failures_since_start"))
        .filter(total__gte=settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT)
    )
    return {row["username"] for row in rows}


def account_unlock(email: str) -> int:
    """Forget the wrong passwords counted against this e-mail address (every address's); the
    number of records removed. Services call it (org_profile.services.sign_in_unlock)."""
    count, _ = AccessAttempt.objects.annotate(lower=Lower("username")).filter(lower=email.strip().lower()).delete()
    return count


class SignInLockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a limit of its own for each lockout parameter, and an audit
    event when an account becomes locked.

    axes compares one number with one limit (``AXES_FAILURE_LIMIT``, the per-account limit). The
    per-address count is scaled onto it, so an address is locked exactly when its own count reaches
    ``SIGN_IN_MAX_FAILURES_PER_ADDRESS``.
    """

    def get_failures(self, request, credentials=None) -> int:
        by_account, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        account_limit = settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT
        address_limit = settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS
        return max(by_account, by_address * account_limit // address_limit)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None or not getattr(request, "axes_locked_out", False):
            return
        email = username_of(request, credentials)
        # Recorded once, when the account's own count reaches its limit: failures while it is
        # locked count on (and keep it locked) but are not new lockouts.
        if email and account_failures(email) == settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT:
            from .services import sign_in_lockout_record

            sign_in_lockout_record(email=email, ip_address=request.axes_ip_address)
        else:
            logger.warning("Sign-in refused: too many failures for this account or from this address.")


def lockout_response(request, original_response=None, credentials=None):
    """The sign-in page again (the staff one, or /admin/'s), saying sign-in is paused; 429."""
    is_admin = request.path.startswith(reverse("admin:index"))
    form_class = AdminAuthenticationForm if is_admin else AuthenticationForm
    form = form_class(request, initial={"username": (credentials or {}).get("username") or request.POST.get("username", "")})
    # An unbound form with one error: binding it would run authenticate (and count) again.
    form.cleaned_data = {}
    form.add_error(None, lockout_message())
    context = {"form": form, "next": request.POST.get("next", request.GET.get("next", ""))}
    if is_admin:
        context.update(admin.site.each_context(request), title="Log in", site_header=admin.site.site_header)
        return render(request, "admin/login.html", context, status=429)
    return render(request, "registration/login.html", context, status=429)
