from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models

from lumapay.audit import client_ip

from .lockout import locked_emails
from .models import Location, Membership, Organization, User
from .services import (
    PLATFORM_FEE_FIELDS,
    organization_platform_fee_set,
    sign_in_unlock_by_operator,
    user_mfa_reset_by_operator,
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_active", "is_staff", "sign_in_locked"]
    actions = ["unlock_sign_in", "two_step_sign_in_reset"]

    @admin.display(boolean=True, description="sign-in locked")
    def sign_in_locked(self, user):
        # One small indexed query per row of the operators' list (at most a page of users).
        return bool(locked_emails([user.email]))

    @admin.action(description="Unlock sign-in (after too many wrong passwords)")
    def unlock_sign_in(self, request, queryset):
        unlocked = [
            user.email for user in queryset if sign_in_unlock_by_operator(user=user, actor=request.user, ip_address=client_ip(request))
        ]
        if unlocked:
            self.message_user(request, f"Unlocked: {', '.join(unlocked)}.", messages.SUCCESS)
        else:
            self.message_user(request, "None of them was locked.", messages.INFO)

    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        ("Operator access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    @admin.action(description="Reset two-step sign-in (remove authenticator apps and backup codes)")
    def two_step_sign_in_reset(self, request, queryset):
        # Through the service, so each reset is in the audit trail of the user's organizations.
        for user in queryset:
            user_mfa_reset_by_operator(actor=request.user, user=user)
        self.message_user(
            request,
            f"Reset two-step sign-in for {queryset.count()} user(s): they set up a new authenticator app at their next sign-in.",
            messages.SUCCESS,
        )


class LocationInline(admin.TabularInline):
    model = Location
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "payment_gateway", "platform_fee_percent", "platform_fee_fixed_cents", "created_at"]
    search_fields = ["name", "slug", "legal_name"]
    list_filter = ["payment_gateway"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [LocationInline]
    # The profile is the clinic's administrators' to change (validated, audited, sent to Stripe:
    # org_profile.profile), and the Stripe state is Stripe's word (account.updated): operators
    # read them here, never edit them around those rules.
    readonly_fields = [
        "legal_name", "business_type", "tax_id_last4", "address_line1", "address_line2", "city", "state",
        "postal_code", "industry_code", "public_name", "support_phone", "support_email", "website",
        "statement_descriptor", "stripe_account_id", "stripe_charges_enabled", "stripe_payouts_enabled",
        "stripe_details_submitted", "stripe_requirements_due", "stripe_requirements", "stripe_current_deadline",
        "stripe_disabled_reason", "stripe_account_updated_at",
        "stripe_disconnected_at",
    ]  # fmt: skip
    # A website typed without a scheme ("clinic.example") is read as https://, as Django 6 will.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request, obj, form, change):
        # The platform's fee goes through its service (validated, audited with old and new values);
        # the rest of the form is saved as the admin saves it.
        fee = {field: getattr(obj, field) for field in PLATFORM_FEE_FIELDS}
        if change:
            for field in PLATFORM_FEE_FIELDS:
                setattr(obj, field, form.initial[field])
        super().save_model(request, obj, form, change)
        stored = organization_platform_fee_set(
            organization=obj, actor=request.user, percent=fee["platform_fee_percent"], fixed_cents=fee["platform_fee_fixed_cents"]
        )
        for field in PLATFORM_FEE_FIELDS:
            setattr(obj, field, getattr(stored, field))


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_active"]
    list_filter = ["organization", "role", "is_active"]
    search_fields = ["user__email", "organization__name"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["locations"]


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "is_active"]
    list_filter = ["organization", "is_active"]
    search_fields = ["name"]
