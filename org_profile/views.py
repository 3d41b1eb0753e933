import base64
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError

from .access import ADMINISTRATORS, membership_required
from .forms import OrganizationSettingsForm
from .middleware import SESSION_KEY
from .selectors import (
    members_with_mfa,
    memberships_of,
    mfa_authenticator_of,
    mfa_backup_codes_left,
    mfa_has_device,
    mfa_required,
)
from .services import (
    BACKUP_CODE_COUNT,
    AUTHENTICATOR_NAME,
    MemberNotFound,
    MfaCodeRefused,
    OrganizationSettingsInvalid,
    member_mfa_reset,
    mfa_authenticator_enrol,
    mfa_backup_codes_generate,
    mfa_code_verify,
    organization_update,
    totp_key_base32,
    totp_key_new,
)

# The authenticator secret being set up, kept in the (server-side) session until a code confirms it.
ENROL_KEY_SESSION_KEY = "mfa_enrol_key"


@login_required
@require_POST
def organization_switch(request):
    """Make another of the user's organizations the current one for this session."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404
    membership = memberships_of(user=request.user).filter(organization_id=organization_id).first()
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = membership.organization_id
    messages.success(request, f"You are now working in {membership.organization.name}.")
    # Ids in the old URL belong to the old organization: land on the dashboard instead.
    return redirect("transactions:dashboard")


# TODO(issue 9, item 3): @reauthentication_required (org_profile/access.py) before saving a change to mfa_required_for_everyone (an MFA setting).
@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
def organization_settings(request):
    """The organization's legal and public-facing information and who may refund: administrators
    only (everyone else gets 403, as for any page their role may not use)."""
    organization = request.organization
    if request.method == "POST":
        form = OrganizationSettingsForm(request.POST)
        if form.is_valid():
            before = OrganizationSettingsForm.initial_for(organization)
            try:
                updated = organization_update(organization=organization, actor=request.user, data=form.data_for_service())
            except OrganizationSettingsInvalid as error:
                for field, field_errors in error.errors.items():
                    for message in field_errors:
                        form.add_error(field, message)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                changed = before != OrganizationSettingsForm.initial_for(updated)
                messages.success(request, "Saved the organization's settings." if changed else "Nothing changed.")
                return redirect("organization_settings")
        status = 400
    else:
        form = OrganizationSettingsForm(initial=OrganizationSettingsForm.initial_for(organization))
        status = 200
    return render(
        request,
        "org_profile/settings.html",
        {"form": form, "organization": organization, "nav": "organization_settings"},
        status=status,
    )


# -- two-step sign-in ---------------------------------------------------------------------------------


def _next_url(request) -> str:
    """Where to go after the second step: the ``next`` asked for, when it is on this site."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return next_url
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _step_url(name: str, next_url: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': next_url})}"


class SignInView(auth_views.LoginView):
    """The password, then (for whoever needs it) the second step: the code page for a user with an
    authenticator app or backup codes, setting one up for a user who must and has none. Until then
    the session is signed in but not verified, and TwoStepSignInMiddleware holds every other page."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.get_user()
        if mfa_has_device(user=user):
            return redirect(_step_url("mfa_verify", response.url))
        if mfa_required(user=user, memberships=list(memberships_of(user=user))):
            return redirect(_step_url("mfa_enrol", response.url))
        return response


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def mfa_verify(request):
    """The second step: a 6-digit code from the authenticator app, or a backup code."""
    user = request.user
    next_url = _next_url(request)
    if user.is_verified():
        return redirect(next_url)
    if not mfa_has_device(user=user):
        return redirect(_step_url("mfa_enrol", next_url))
    error, status = None, 200
    if request.method == "POST":
        try:
            device = mfa_code_verify(user=user, code=request.POST.get("code", ""), ip_address=client_ip(request))
        except MfaCodeRefused as refused:
            error, status = refused.message, 400
        else:
            # A new session id for the verified session: one taken before the second step is worthless.
            request.session.cycle_key()
            otp_login(request, device)
            if not isinstance(device, TOTPDevice):
                left = mfa_backup_codes_left(user=user)
                messages.warning(
                    request,
                    f"You signed in with a backup code; {left} left. If your phone is lost, set up a new "
                    "authenticator app under Sign-in security.",
                )
            return redirect(next_url)
    return render(request, "registration/mfa_verify.html", {"error": error, "next": next_url}, status=status)


def _qr_code_data_uri(text: str) -> str:
    """An SVG QR code as a data: URI for an <img> (no inline script or style on the page)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


# TODO(issue 9, item 3): add @reauthentication_required (org_profile/access.py) to mfa_enrol, mfa_backup_codes_new and member_mfa_reset_view once it lands.
@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def mfa_enrol(request):
    """Set up an authenticator app (or replace one): a QR code and the secret to type, then a code
    from the app to confirm; then the 10 backup codes, shown once. Open to a user with nothing set up
    (whoever must use two-step sign-in is sent here before anything else) and to a verified session;
    a user with a device who has not entered a code goes to the code page first."""
    user = request.user
    next_url = _next_url(request)
    if not user.is_verified() and mfa_has_device(user=user):
        return redirect(_step_url("mfa_verify", request.get_full_path()))
    key = request.session.get(ENROL_KEY_SESSION_KEY)
    if not key:
        key = request.session[ENROL_KEY_SESSION_KEY] = totp_key_new()
    error, status = None, 200
    if request.method == "POST":
        try:
            device, codes = mfa_authenticator_enrol(
                user=user, key=key, code=request.POST.get("code", ""), ip_address=client_ip(request)
            )
        except MfaCodeRefused as refused:
            error, status = refused.message, 400
        else:
            del request.session[ENROL_KEY_SESSION_KEY]
            request.session.cycle_key()
            otp_login(request, device)
            return _backup_codes_page(request, codes, next_url=next_url, enrolled=True)
    url = TOTPDevice(user=user, key=key).config_url
    context = {
        "qr_code": _qr_code_data_uri(url),
        "secret": totp_key_base32(key),
        "error": error,
        "next": next_url,
        "replacing": mfa_authenticator_of(user=user) is not None,
        "required": mfa_required(user=user, memberships=request.memberships),
    }
    return render(request, "org_profile/mfa_enrol.html", context, status=status)


def _backup_codes_page(request, codes: list[str], *, next_url: str, enrolled: bool):
    response = render(
        request,
        "org_profile/mfa_backup_codes.html",
        {"codes": codes, "next": next_url, "enrolled": enrolled, "count": BACKUP_CODE_COUNT},
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@login_required
@require_http_methods(["GET", "HEAD"])
def mfa_security(request):
    """A person's own two-step sign-in: whether it is set up, how many backup codes are left."""
    user = request.user
    authenticator = mfa_authenticator_of(user=user)
    context = {
        "authenticator": authenticator,
        "authenticator_name": AUTHENTICATOR_NAME,
        "backup_codes_left": mfa_backup_codes_left(user=user) if authenticator else 0,
        "required": mfa_required(user=user, memberships=request.memberships),
        "nav": "security",
    }
    return render(request, "org_profile/mfa_security.html", context)


@login_required
@require_POST
def mfa_backup_codes_new(request):
    """Generate new backup codes (the old ones stop working) and show them once."""
    try:
        codes = mfa_backup_codes_generate(user=request.user, ip_address=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("mfa_security")
    return _backup_codes_page(request, codes, next_url=reverse("mfa_security"), enrolled=False)


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD"])
def organization_members(request):
    """The organization's members and whether each has set up two-step sign-in: administrators only."""
    organization = request.organization
    context = {
        "members": members_with_mfa(organization=organization),
        "organization": organization,
        "nav": "organization_settings",
    }
    return render(request, "org_profile/members.html", context)


@membership_required(roles=ADMINISTRATORS)
@require_POST
def member_mfa_reset_view(request, membership_id: int):
    """Remove a member's authenticator app and backup codes (a lost phone): administrators only."""
    try:
        membership = member_mfa_reset(
            organization=request.organization, actor=request.user, membership_id=membership_id, ip_address=client_ip(request)
        )
    except MemberNotFound:
        raise Http404("No such member.")
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            f"Reset two-step sign-in for {membership.user.email}: they set up a new authenticator app at their next sign-in.",
        )
    return redirect("organization_members")
