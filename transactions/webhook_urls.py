"""Where gateways deliver their events."""

from django.urls import path

from .views import webhooks

app_name = "webhooks"

urlpatterns = [
    path("sandbox/", webhooks.sandbox, name="sandbox"),
    path("stripe/", webhooks.stripe, name="stripe"),
]
