"""Where gateways deliver their events, and Twilio the texts patients send us."""

from django.urls import path

from .views import sms_webhook, webhooks

app_name = "webhooks"

urlpatterns = [
    path("sandbox/", webhooks.sandbox, name="sandbox"),
    path("stripe/", webhooks.stripe, name="stripe"),
    path("twilio/sms/", sms_webhook.twilio_sms_inbound, name="twilio_sms"),
]
