from django.urls import path

from . import views

app_name = "uploads"

urlpatterns = [
    path("", views.upload_center, name="center"),
    path("send/", views.upload_send, name="send"),
    path("templates/<str:kind>.<str:file_format>", views.upload_template_download, name="template"),
    path("<int:pk>/", views.upload_detail, name="detail"),
    path("<int:pk>/import/", views.upload_import, name="import"),
    path("<int:pk>/discard/", views.upload_discard, name="discard"),
]
