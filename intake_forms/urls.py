"""Staff pages of intake forms: the builder (managers and administrators), sending a form, and
reading submissions (any member)."""

from django.urls import path

from . import views

app_name = "intake_forms"

urlpatterns = [
    path("", views.form_list, name="form_list"),
    path("<int:pk>/", views.form_edit, name="form_edit"),
    path("<int:pk>/send/", views.form_send_view, name="form_send"),
    path("submissions/<int:pk>/", views.submission_detail, name="submission_detail"),
    path("submissions/<int:pk>/form.pdf", views.submission_pdf, name="submission_pdf"),
    path("files/<int:pk>/", views.form_file_download, name="form_file"),
]
