import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumapay.settings")
application = get_wsgi_application()

# The web server's database connections start as the app's role with no organization; each
# request then enters its own scope (org_profile.middleware, lumapay/tenant_rls.py).
from lumapay.tenant_rls import serve_with_tenant_role  # noqa: E402

serve_with_tenant_role()
