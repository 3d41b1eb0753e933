from django.contrib import messages
from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lumapay.audit import client_ip
from lumapay.errors import ApplicationError

from .access import (
    ADMINISTRATORS,
    found_or_404,
    membership_required,
    reauthentication_pending_form,
    reauthentication_required,
)
from .enums import Role
from .forms import OrganizationSettingsForm, PasswordConfirmForm
from .middleware import SESSION_KEY
from .selectors import member_of_organization, members_of_organization, memberships_of
from .services import OrganizationSettingsInvalid, organization_update, sign_in_unlock
from .sessions import (
    background_request,
    idle_seconds_left,
    password_confirmed,
    session_json,
    session_keep_alive,
)

# Role settings: who may refund and who may charge a card on file.
# Changing them asks for the password again.
ROLE_SETTINGS = ("refund_roles", "saved_card_roles")


def role_settings_change(request) -> bool:
    """Does this POST to the organization settings change who may refund or charge cards?"""
    if request.method != "POST":
        return False
    organization = request.organization
    for field in ROLE_SETTINGS:
        if not hasattr(organization, field) or field not in OrganizationSettingsForm.base_fields:
            continue
        wanted = set(request.POST.getlist(field)) | {Role.ADMINISTRATOR}
        if wanted != set(getattr(organization, field)) | {Role.ADMINISTRATOR}:
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
    """The organization's members, with their role and whether their sign-in is locked."""
    return render(
        request,
        "org_profile/members.html",
        {"members": members_of_organization(organization=request.organization), "nav": "members"},
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
