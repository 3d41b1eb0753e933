"""The Help Center's and support tickets' URLs (included by helpcenter/urls.py)."""

from django.urls import path

from . import views_help

urlpatterns = [
    path("", views_help.help_index, name="index"),
    path("articles/<slug:slug>/", views_help.help_article, name="article"),
    path("tickets/", views_help.ticket_list, name="ticket_list"),
    path("tickets/new/", views_help.ticket_new, name="ticket_new"),
    path("tickets/<int:pk>/", views_help.ticket_detail, name="ticket_detail"),
    path("attachments/<int:pk>/", views_help.attachment_download, name="attachment_download"),
]
