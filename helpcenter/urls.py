from django.urls import include, path

from .help_urls import urlpatterns as help_urlpatterns

app_name = "helpcenter"

urlpatterns = [
    # --- Help Center and support tickets (helpcenter/help_urls.py) ---
    *help_urlpatterns,
    # --- end Help Center ---
    # --- Luma U (helpcenter/luma_u/) ---
    path("luma-u/", include("helpcenter.luma_u.urls")),
    # --- end Luma U ---
]
