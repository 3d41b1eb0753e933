"""The organization's profile pages: administrators only (everyone else gets 403). Legal
information and the people Stripe asks about ask for the password again before they are shown
for editing, and again on saving when it has been too long; the forms never carry back a tax ID,
a date of birth or SSN digits (they are "on file")."""

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from lumapay.errors import ApplicationError

from .access import ADMINISTRATORS, found_or_404, membership_required, reauthentication_required
from .logo import LogoRefused
from .models import OrganizationPerson
from .profile import (
    PersonNotFound,
    ProfileInvalid,
    organization_legal_update,
    organization_logo_remove,
    organization_logo_set,
    organization_person_add,
    organization_person_change,
    organization_person_remove,
    organization_public_update,
)
from .profile_forms import LegalForm, LogoForm, PersonForm, PublicForm
from .selectors import organization_people, stripe_requirements_view


def _profile_url() -> str:
    return reverse("organization_profile")


def _page(request, *, public_form=None, logo_form=None, status=200):
    organization = request.organization
    people = organization_people(organization=organization)
    context = {
        "organization": organization,
        "public_form": public_form or PublicForm(initial=PublicForm.initial_for(organization)),
        "logo_form": logo_form or LogoForm(),
        "people": people,
        "has_controller": any(person.is_controller for person in people),
        "has_owners": any(person.is_owner for person in people),
        "ownership_total": sum((person.ownership_percent or Decimal(0) for person in people if person.is_owner), Decimal(0)),
        "stripe": stripe_requirements_view(organization=organization),
        "nav": "organization_profile",
    }
    return render(request, "org_profile/profile.html", context, status=status)


@never_cache
@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD"])
def organization_profile(request):
    """The profile: legal information (to edit on its own page), what patients see (edited here),
    the logo, the owners and controller, and what Stripe still needs."""
    return _page(request)


@membership_required(roles=ADMINISTRATORS)
@require_POST
def organization_public(request):
    form = PublicForm(request.POST)
    if form.is_valid():
        try:
            before = PublicForm.initial_for(request.organization)
            updated = organization_public_update(organization=request.organization, actor=request.user, data=form.data_for_service())
        except ProfileInvalid as error:
            form.add_service_errors(error.errors)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            changed = before != PublicForm.initial_for(updated)
            messages.success(request, "Saved what patients see." if changed else "Nothing changed.")
            return redirect("organization_profile")
    return _page(request, public_form=form, status=400)


@membership_required(roles=ADMINISTRATORS)
@require_POST
def organization_logo(request):
    """Upload the logo (checked by its content, stored resized as a PNG), or remove it."""
    if "remove" in request.POST:
        organization_logo_remove(organization=request.organization, actor=request.user)
        messages.success(request, "Removed the logo.")
        return redirect("organization_profile")
    form = LogoForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["logo"]
        limit = settings.ORGANIZATION_LOGO_MAX_BYTES
        try:
            if upload is None:
                raise LogoRefused("Choose an image file for the logo.")
            if upload.size > limit:
                # Refused by its size before it is read into memory.
                raise LogoRefused(f"The logo is too large: use a file of at most {limit // (1024 * 1024) or 1} MB.")
            organization_logo_set(organization=request.organization, actor=request.user, data=upload.read())
        except ApplicationError as error:
            form.add_error("logo", error.message)
        else:
            messages.success(request, "Saved the logo: patients see it on pay pages and receipts.")
            return redirect("organization_profile")
    return _page(request, logo_form=form, status=400)


# Django's error reports (the DEBUG page, any error e-mail) leave these out of the request they show.
@sensitive_post_parameters("tax_id")
@never_cache
@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(return_to=lambda request: reverse("organization_legal"))
def organization_legal(request):
    """The legal information, for administrators who typed their password recently."""
    organization = request.organization
    if request.method == "POST":
        form = LegalForm(request.POST)
        if form.is_valid():
            try:
                organization_legal_update(organization=organization, actor=request.user, data=form.data_for_service())
            except ProfileInvalid as error:
                form.add_service_errors(error.errors)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, "Saved the legal information.")
                return redirect("organization_profile")
        status = 400
    else:
        form = LegalForm(initial=LegalForm.initial_for(organization))
        status = 200
    return render(
        request,
        "org_profile/profile_legal.html",
        {"form": form, "organization": organization, "nav": "organization_profile"},
        status=status,
    )


@sensitive_post_parameters("date_of_birth", "ssn_last4")
@never_cache
@membership_required(roles=ADMINISTRATORS)
@require_http_methods(["GET", "HEAD", "POST"])
@reauthentication_required(return_to=lambda request: request.path)
def organization_person(request, pk: int | None = None):
    """Add an owner or the controller (``pk`` None), or change one."""
    organization = request.organization
    person = None
    if pk is not None:
        person = found_or_404(OrganizationPerson.objects.filter(organization=organization, pk=pk).first(), "No such person.")
    if request.method == "POST":
        form = PersonForm(request.POST)
        if form.is_valid():
            try:
                if person is None:
                    added = organization_person_add(organization=organization, actor=request.user, data=form.data_for_service())
                    messages.success(request, f"Added {added.full_name}.")
                else:
                    changed = organization_person_change(
                        organization=organization, actor=request.user, person_id=person.pk, data=form.data_for_service()
                    )
                    messages.success(request, f"Saved {changed.full_name}'s details.")
            except PersonNotFound:
                raise Http404("No such person.")
            except ProfileInvalid as error:
                form.add_service_errors(error.errors)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                return redirect("organization_profile")
        status = 400
    else:
        form = PersonForm(initial=PersonForm.initial_for(person) if person else {})
        status = 200
    return render(
        request,
        "org_profile/profile_person.html",
        {"form": form, "person": person, "organization": organization, "nav": "organization_profile"},
        status=status,
    )


@membership_required(roles=ADMINISTRATORS)
@require_POST
@reauthentication_required(return_to=lambda request: reverse("organization_profile"))
def organization_person_remove_view(request, pk: int):
    try:
        organization_person_remove(organization=request.organization, actor=request.user, person_id=pk)
    except PersonNotFound:
        raise Http404("No such person.")
    except ProfileInvalid as error:
        for field_errors in error.errors.values():
            for message in field_errors:
                messages.error(request, message)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Removed the person from the profile.")
    return redirect("organization_profile")
