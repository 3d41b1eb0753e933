from django.contrib.auth import views as auth_views
from django.urls import path

from . import profile_views, views

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("login/code/", views.mfa_verify, name="mfa_verify"),
    path("security/", views.mfa_security, name="mfa_security"),
    path("security/authenticator/", views.mfa_enrol, name="mfa_enrol"),
    path("security/backup-codes/", views.mfa_backup_codes_new, name="mfa_backup_codes_new"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("organization/switch/", views.organization_switch, name="organization_switch"),
    path("organization/", views.organization_settings, name="organization_settings"),
    path("organization/profile/", profile_views.organization_profile, name="organization_profile"),
    path("organization/profile/public/", profile_views.organization_public, name="organization_public"),
    path("organization/profile/logo/", profile_views.organization_logo, name="organization_logo"),
    path("organization/profile/legal/", profile_views.organization_legal, name="organization_legal"),
    path("organization/profile/people/add/", profile_views.organization_person, name="organization_person_add"),
    path("organization/profile/people/<int:pk>/", profile_views.organization_person, name="organization_person"),
    path(
        "organization/profile/people/<int:pk>/remove/",
        profile_views.organization_person_remove_view,
        name="organization_person_remove",
    ),
    path("members/", views.members, name="members"),
    path("locations/", views.locations, name="locations"),
    path("members/<int:pk>/unlock/", views.member_unlock, name="member_unlock"),
    path("members/<int:membership_id>/reset-two-step/", views.member_mfa_reset_view, name="member_mfa_reset"),
    path("confirm-password/", views.password_confirm, name="password_confirm"),
    path("session/", views.session_status, name="session_status"),
    path("session/keep-alive/", views.session_keep_alive_view, name="session_keep_alive"),
]
