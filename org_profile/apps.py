from django.apps import AppConfig


class OrgProfileConfig(AppConfig):
    name = "org_profile"
    verbose_name = "Organizations and staff"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from .sessions import session_started

        # Every sign-in (ours, /admin/'s) stamps its session: when it began, for the absolute
        # session age, and when the password was last typed, for re-authentication.
        def stamp_session(sender, request, user, **kwargs):
            if request is not None and hasattr(request, "session"):
                session_started(request)

        user_logged_in.connect(stamp_session, dispatch_uid="org_profile.session_started")
