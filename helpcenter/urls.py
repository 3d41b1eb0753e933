from django.urls import include, path

app_name = "helpcenter"

urlpatterns = [
    # --- Luma U (helpcenter/luma_u/) ---
    path("luma-u/", include("helpcenter.luma_u.urls")),
    # --- end Luma U ---
]
