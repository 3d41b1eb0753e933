"""Headers every answer gets that Django's SecurityMiddleware does not set.

- ``Cache-Control: private, no-store`` on every page a signed-in user sees (staff pages, the
  operators' admin) and on every patient's pay page: they show PHI, and neither a shared cache
  nor the browser's disk and back-forward cache may keep them. A view whose answer may be kept
  sets ``response.caching_allowed = True``; one that already says ``no-store`` is left as it is.
- ``Permissions-Policy`` (settings.PERMISSIONS_POLICY): no camera, microphone, location, payment
  handler or sensors for any page of LumaPay, nor for anything a page could embed.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.cache import patch_cache_control

PAY_PATH_PREFIX = "/pay/"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        if _shows_phi(request) and not getattr(response, "caching_allowed", False):
            if "no-store" not in response.get("Cache-Control", ""):
                # Whatever the view said about caching, PHI is not kept.
                if "Cache-Control" in response:
                    del response["Cache-Control"]
                patch_cache_control(response, private=True, no_store=True)
        return response


def _shows_phi(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated) or request.path.startswith(PAY_PATH_PREFIX)
