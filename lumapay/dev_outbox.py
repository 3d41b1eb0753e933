"""The development outbox: e-mails and SMS the app "sent", listed at /dev/outbox/.

Only for DEBUG; the e-mail backend also prints each message, like Django's console backend.
"""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.http import Http404
from django.shortcuts import render

from .models import DevOutboxMessage


class EmailBackend(ConsoleEmailBackend):
    def send_messages(self, email_messages):
        for message in email_messages:
            html = ""
            for content, mimetype in getattr(message, "alternatives", []):
                if mimetype == "text/html":
                    html = content
            DevOutboxMessage.objects.create(
                channel="email",
                to=", ".join(message.to),
                subject=message.subject,
                body=message.body,
                html_body=html,
            )
        return super().send_messages(email_messages)


# The HTML e-mails it previews (in a srcdoc frame, which inherits the page's policy) are styled
# inline, as e-mail must be.
@csp_update({"style-src": [UNSAFE_INLINE]})
def dev_outbox(request):
    if not settings.DEV_OUTBOX_ENABLED:
        raise Http404
    messages = DevOutboxMessage.objects.all()[:100]
    return render(request, "dev_outbox.html", {"outbox_messages": messages})
