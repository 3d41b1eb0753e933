import base64
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError
from lumapay.tenant_rls import all_organizations

from .access import (
    ADMINISTRATORS,
    found_or_404,
    membership_required,
    reauthentication_pending_form,
    reauthentication_required,
)
from .enums import Role
from .forms import ROLES_SHOWN_FIELD, OrganizationSettingsForm, PasswordConfirmForm
from .middleware import SESSION_KEY
from .models import Location
from .selectors import (
    member_of_organization,
    members_of_organization,
    memberships_of,
    mfa_authenticator_of,
    mfa_backup_codes_left,
    mfa_has_device,
    mfa_required,
)
from .services import (
    AUTHENTICATOR_NAME,
    BACKUP_CODE_COUNT,
    MemberNotFound,
    MfaCodeRefused,
    OrganizationSettingsInvalid,
    location_ehr_id_set,
    member_mfa_reset,
    mfa_authenticator_enrol,
    mfa_backup_codes_generate,
    mfa_code_verify,
    organization_update,
    sign_in_unlock,
    totp_key_base32,
    totp_key_new,
)
from .sessions import (
    background_request,
    idle_seconds_left,
    password_confirmed,
    session_json,
    session_keep_alive,
)

# Settings that ask for the password again when changed: who may refund, who may charge a card on
# file, and whether everyone signs in in two steps.
ROLE_SETTINGS = ("refund_roles", "saved_card_roles")
MFA_SETTINGS = ("mfa_required_for_everyone",)

# The authenticator secret being set up, kept in the (server-side) session until a code confirms it.
ENROL_KEY_SESSION_KEY = "mfa_enrol_key"


def role_settings_change(request) -> bool:
    """Does this POST to the organization settings change who may refund or charge cards, or
    whether everyone signs in in two steps?"""
    if request.method != "POST":
        return False
    organization = request.organization
    shown = set(request.POST.getlist(ROLES_SHOWN_FIELD))
    for field in ROLE_SETTINGS:
        if not hasattr(organization, field) or field not in OrganizationSettingsForm.base_fields:
            continue
        if field not in request.POST and field not in shown:
            continue  # not on the form sent: the setting stays as it is (OrganizationSettingsForm)
        wanted = set(request.POST.getlist(field)) | {Role.ADMINISTRATOR}
        if wanted != set(getattr(organization, field)) | {Role.ADMINISTRATOR}:
            return True
    for field in MFA_SETTINGS:
        if field in request.POST and (request.POST.get(field) in ("true", "on", "1")) != getattr(organization, field):
            return True
    return False


@login_required
@require_POST
def organization_switch(request):
    """Make another of the user's organizations the current one for this session."""
    try:
        organization_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404
    # Which organization the session acts for next: the user's own memberships, in any of them.
    with all_organizations():
        membership = memberships_of(user=request.user).filter(organization_id=organization_id).first()
    if membership is None:
        raise Http404
    request.session[SESSION_KEY] = membership.organization_id
    messages.success(request, f"You are now working in {membership.organization.name}.")
    # Ids in the old URL belong to the old organization: land on the dashboard instead.
    return redirect("transactions:dashboard")


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(when=role_settings_change, keep_form=True)
def organization_settings(request):
    """The organization's legal and public-facing information, who may refund, who may use cards
    on file (and the most one charge may take) and the idle timeout: administrators only (everyone
    else gets 403, as for any page their role may not use). Changing who may refund or use cards
    asks for the password again first."""
    organization = request.organization
    pending = reauthentication_pending_form(request) if request.method != "POST" else None
    if pending is not None:
        # Back from confirming the password: the form as it was sent, not saved yet.
        form = OrganizationSettingsForm(pending)
        form.is_valid()
        status = 200
    elif request.method == "POST":
        form = OrganizationSettingsForm(request.POST)
        if form.is_valid():
            before = OrganizationSettingsForm.initial_for(organization)
            try:
                updated = organization_update(organization=organization, actor=request.user, data=form.data_for_service())
            except OrganizationSettingsInvalid as error:
                for field, field_errors in error.errors.items():
                    for message in field_errors:
                        form.add_error(form.field_for(field), message)
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


@membership_required(roles=ADMINISTRATORS)
@require_GET
def members(request):
    """The organization's members, with their role, whether their sign-in is locked and whether
    they have set up two-step sign-in: administrators unlock a sign-in or reset two-step sign-in here."""
    return render(
        request,
        "org_profile/members.html",
        {
            "members": members_of_organization(organization=request.organization),
            "organization": request.organization,
            "nav": "members",
        },
    )


@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
def locations(request):
    """The organization's locations, and which of the EHR's places each one is: appointments that
    arrive from the EHR or an upload land at the location with their EHR location id (or, without
    one, the location of the same name). Administrators only."""
    if request.method == "POST":
        try:
            location = location_ehr_id_set(
                organization=request.organization,
                actor=request.user,
                location_id=int(request.POST.get("location") or 0),
                ehr_location_id=request.POST.get("ehr_location_id", ""),
            )
        except (ApplicationError, ValueError) as error:
            messages.error(request, getattr(error, "message", "No such location."))
        else:
            messages.success(request, f"Saved the EHR location id of {location.name}.")
        return redirect("locations")
    return render(
        request,
        "org_profile/locations.html",
        {
            "locations": Location.objects.filter(organization=request.organization).order_by("name"),
            "organization": request.organization,
            "nav": "locations",
        },
    )


@membership_required(roles=ADMINISTRATORS)
@require_POST
def member_unlock(request, pk):
    membership = found_or_404(member_of_organization(organization=request.organization, pk=pk))
    try:
        unlocked = sign_in_unlock(
            organization=request.organization, actor=request.user, member=membership.user, ip_address=client_ip(request)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        name = membership.user.get_full_name() or membership.user.email
        if unlocked:
            messages.success(request, f"{name} can sign in again.")
        else:
            messages.info(request, f"{name}'s sign-in was not locked.")
    return redirect("members")


@login_required
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def password_confirm(request):
    """Type the password again before a sensitive action, then go on to it (``next``)."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    if request.method == "POST":
        form = PasswordConfirmForm(request.POST)
        if form.is_valid():
            user = authenticate(request, username=request.user.email, password=form.cleaned_data["password"])
            if user is not None and user.pk == request.user.pk:
                password_confirmed(request)
                return redirect(next_url or "transactions:dashboard")
            form.add_error("password", "That is not your password. Try again.")
        status = 400
    else:
        form = PasswordConfirmForm()
        status = 200
    return render(request, "registration/password_confirm.html", {"form": form, "next": next_url}, status=status)


@session_json
@background_request
@require_GET
def session_status(request):
    """How long the session has left without activity. Asking is not activity."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False}, status=401)
    return JsonResponse({"signed_in": True, "seconds_left": idle_seconds_left(request)})


@session_json
@require_POST
def session_keep_alive_view(request):
    """"Stay signed in": counts as activity."""
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False}, status=401)
    session_keep_alive(request)
    return JsonResponse({"signed_in": True, "seconds_left": idle_seconds_left(request)})


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
        # The organizations the user belongs to, in any of them (this request has none yet).
        with all_organizations():
            memberships = list(memberships_of(user=user))
        if mfa_required(user=user, memberships=memberships):
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


@never_cache
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
# Replacing an authenticator asks for the password again; a first one (right after signing in) does not.
@reauthentication_required(when=lambda request: mfa_has_device(user=request.user))
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
@reauthentication_required(return_to=lambda request: reverse("mfa_security"))
def mfa_backup_codes_new(request):
    """Generate new backup codes (the old ones stop working) and show them once."""
    try:
        codes = mfa_backup_codes_generate(user=request.user, ip_address=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("mfa_security")
    return _backup_codes_page(request, codes, next_url=reverse("mfa_security"), enrolled=False)


@membership_required(roles=ADMINISTRATORS)
@require_POST
@reauthentication_required(return_to=lambda request: reverse("members"))
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
    return redirect("members")
