"""Gateway webhooks: verify, store raw, answer quickly; processing happens in its own transaction.

Not atomic as a whole and exempt from CSRF (the signature is the proof). 415 when the body is not
sent as JSON, 400 when the signature, timestamp (more than 300 s either way from now) or body do
not check out (then nothing is stored); 200 for everything stored, including duplicates and event
types we do not handle.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from lumapay.tenant_rls import all_organizations
from org_profile.enums import PaymentGateway as GatewayName

from ..gateways.base import WebhookVerificationError
from ..services.gateway_events import gateway_event_receive


def _receive(request, *, gateway: str):
    # Both gateways send JSON; anything else (a form post, a probe) is refused before it is read.
    if request.content_type != "application/json":
        return JsonResponse({"error": "Send the event as application/json."}, status=415)
    # Which clinic an event concerns is known only once it is verified and parsed, and some concern
    # none of ours: storing it spans clinics (reviewed; lumapay/tenant_rls.py).
    try:
        with all_organizations():
            event = gateway_event_receive(gateway=gateway, body=request.body, headers=request.headers)
    except WebhookVerificationError as error:
        return JsonResponse({"error": error.message}, status=400)
    return JsonResponse({"received": True, "id": event.event_id})


@csrf_exempt
@require_POST
def sandbox(request):
    return _receive(request, gateway=GatewayName.SANDBOX)


@csrf_exempt
@require_POST
def stripe(request):
    """Stripe's events (the Connect endpoint's, and the platform's), signed with STRIPE_WEBHOOK_SECRET."""
    return _receive(request, gateway=GatewayName.STRIPE)
