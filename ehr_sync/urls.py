from django.urls import path

from . import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_hub, name="hub"),
    path("new/", views.patient_new, name="new"),
    path("<int:pk>/", views.patient_profile, name="profile"),
    path("<int:pk>/edit/", views.patient_edit, name="edit"),
    path("<int:pk>/access-log/", views.patient_access_log, name="access_log"),
    path("access-log/", views.access_log_export, name="access_log_export"),
]
