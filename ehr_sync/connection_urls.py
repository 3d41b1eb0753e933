from django.urls import path

from . import connection_views as views

app_name = "ehr_connections"

urlpatterns = [
    path("", views.connection_list, name="list"),
    path("new/<slug:kind>/", views.connection_new, name="new"),
    path("<int:pk>/", views.connection_detail, name="detail"),
    path("<int:pk>/edit/", views.connection_edit, name="edit"),
    path("<int:pk>/sync/", views.connection_sync_now, name="sync_now"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
]
