"""The operators' admin site (``/admin/``): Django's admin, open only to a session that passed the
second step of signing in (django-otp's ``is_verified``), as django-otp's ``OTPAdminSite`` is.

Operators sign in on the app's own sign-in page, which asks for the code after the password, so the
admin has no sign-in form of its own: its login page sends them there and back.
"""

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.urls import reverse


class OperatorsAdminSite(admin.AdminSite):
    site_header = "LumaPay operations"
    site_title = "LumaPay operations"

    def has_permission(self, request):
        user = request.user
        return super().has_permission(request) and getattr(user, "is_verified", lambda: False)()

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        if request.user.is_authenticated and request.user.is_verified():
            # Signed in and verified, but not an operator: sending them to sign in again would loop.
            raise PermissionDenied("The operators' admin is for LumaPay's operators only.")
        return redirect_to_login(next_url)

