"""Twilio's inbound-message webhook: patients' STOP, START and HELP (services/sms_inbound.py).

Exempt from CSRF, this view only: the X-Twilio-Signature header is the proof, checked with the
``twilio`` library's own ``RequestValidator`` against ``TWILIO_AUTH_TOKEN`` and the URL Twilio was
given (``SITE_URL`` + this path: behind a proxy the request's own host may differ). 403 when the
signature does not check out, or when no auth token is configured (nothing can be verified); then
nothing is read or stored. Answers TwiML.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from lumapay.tenant_rls import all_organizations

from ..services.sms_inbound import sms_inbound_receive


def twilio_signed_url(request) -> str:
    """The URL Twilio signs: the one configured in its console, i.e. this site's public address."""
    return f"{settings.SITE_URL}{request.get_full_path()}"


@csrf_exempt
@require_POST
def twilio_sms_inbound(request):
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    params = request.POST.dict()
    if not token or not signature or not RequestValidator(token).validate(twilio_signed_url(request), params, signature):
        return HttpResponseForbidden("The X-Twilio-Signature does not match.", content_type="text/plain")
    # Which clinics the number belongs to is known only from the number: spans clinics (reviewed;
    # lumapay/tenant_rls.py).
    with all_organizations():
        reply = sms_inbound_receive(
            from_number=params.get("From", ""),
            received_on=params.get("MessagingServiceSid") or params.get("To", ""),
            body=params.get("Body", ""),
        )
    response = MessagingResponse()
    if reply.text:
        response.message(reply.text)
    return HttpResponse(str(response), content_type="text/xml")
