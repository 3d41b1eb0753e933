"""The e-mail providers' inbound webhooks (django-anymail's views), where members' replies to
support tickets arrive: ``/webhooks/email/<provider>/inbound/``.

Each is refused (403) until ``ANYMAIL["WEBHOOK_SECRET"]`` is set: anymail itself only warns when
it is missing, and an open inbound webhook would let anyone who knows a ticket's address post to
it. Point the provider at ``https://USER:PASSWORD@<host>/webhooks/email/<provider>/inbound/``
with the same user:password.
"""

from functools import wraps

from anymail.webhooks.mailgun import MailgunInboundWebhookView
from anymail.webhooks.postmark import PostmarkInboundWebhookView
from anymail.webhooks.sendgrid import SendGridInboundWebhookView
from django.conf import settings
from django.http import HttpResponseForbidden
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt


def webhook_secret_required(view):
    @csrf_exempt
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not (settings.ANYMAIL or {}).get("WEBHOOK_SECRET"):
            return HttpResponseForbidden("The inbound e-mail webhook is not configured (ANYMAIL WEBHOOK_SECRET).")
        return view(request, *args, **kwargs)

    return guarded


app_name = "inbound_email"
urlpatterns = [
    path("postmark/inbound/", webhook_secret_required(PostmarkInboundWebhookView.as_view()), name="postmark"),
    re_path(r"^mailgun/inbound(_mime)?/$", webhook_secret_required(MailgunInboundWebhookView.as_view()), name="mailgun"),
    path("sendgrid/inbound/", webhook_secret_required(SendGridInboundWebhookView.as_view()), name="sendgrid"),
]
