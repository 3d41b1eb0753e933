"""Settings → Stripe: the clinic's connected account, for administrators.

GET shows what Stripe last said (charges, payouts, what it still needs). POST ``start`` opens
Stripe's hosted onboarding (creating the account the first time); Stripe sends the
administrator back here with ``?onboarding=returned`` (the state is read again from Stripe) or,
when the link expired, ``?onboarding=refresh`` (a new link is made and followed at once).
POST ``use_stripe`` switches the clinic's payments to Stripe once charges are enabled.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from lumapay.errors import ApplicationError
from org_profile.access import ADMINISTRATORS, membership_required
from org_profile.enums import PaymentGateway

from ..gateways.stripe import stripe_configured
from ..services.stripe_connect import stripe_account_refresh, stripe_onboarding_start, stripe_payments_enable

# What Stripe's requirement names mean, for the administrator; others are shown as Stripe names them.
REQUIREMENT_LABELS = {
    "business_profile.mcc": "The clinic's business category",
    "business_profile.product_description": "A description of what the clinic sells",
    "business_profile.support_phone": "A support phone number",
    "business_profile.url": "The clinic's website",
    "external_account": "A bank account for payouts",
    "tos_acceptance.date": "Acceptance of Stripe's terms of service",
    "tos_acceptance.ip": "Acceptance of Stripe's terms of service",
    "company.tax_id": "The clinic's tax ID (EIN)",
    "company.address.line1": "The clinic's address",
    "representative.first_name": "A representative's name",
    "representative.last_name": "A representative's name",
    "representative.dob.day": "A representative's date of birth",
    "representative.ssn_last_4": "The last 4 digits of a representative's SSN",
}


def _page_url(**query) -> str:
    url = settings.SITE_URL + reverse("transactions:stripe_connect")
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def _onboard(request):
    url = stripe_onboarding_start(
        organization=request.organization,
        actor=request.user,
        return_url=_page_url(onboarding="returned"),
        refresh_url=_page_url(onboarding="refresh"),
    )
    return redirect(url)


@require_http_methods(["GET", "POST"])
@membership_required(roles=ADMINISTRATORS)
def stripe_connect(request):
    organization = request.organization
    try:
        if request.method == "POST":
            if "use_stripe" in request.POST:
                stripe_payments_enable(organization=organization, actor=request.user)
                messages.success(request, "Payments now go through Stripe.")
                return redirect("transactions:stripe_connect")
            return _onboard(request)
        onboarding = request.GET.get("onboarding")
        if onboarding == "refresh" and stripe_configured():
            return _onboard(request)
        if onboarding == "returned":
            organization = stripe_account_refresh(organization=organization, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)

    requirements = []
    for name in organization.stripe_requirements_due or []:
        label = REQUIREMENT_LABELS.get(name, name)
        if label not in requirements:
            requirements.append(label)
    context = {
        "organization": organization,
        "stripe_configured": stripe_configured(),
        "requirements": requirements,
        "uses_stripe": organization.payment_gateway == PaymentGateway.STRIPE,
        "can_use_stripe": bool(organization.stripe_connected and organization.stripe_charges_enabled),
        "disconnected": organization.stripe_disconnected_at is not None,
        "nav": "settings",
    }
    return render(request, "transactions/stripe/connect.html", context)
