from django.contrib import admin
from django.urls import include, path

from .dev_outbox import dev_outbox

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("org_profile.urls")),
    path("patients/", include("ehr_sync.urls")),
    path("ehr-connections/", include("ehr_sync.connection_urls")),
    path("uploads/", include("uploads.urls")),
    path("payouts/", include("payouts.urls")),
    path("help/", include("helpcenter.urls")),
    path("pay/", include("transactions.pay_urls")),
    path("form/", include("intake_forms.patient_urls")),
    path("intake-forms/", include("intake_forms.urls")),
    path("sandbox/", include("transactions.sandbox.urls")),
    # Members' e-mailed replies to support tickets, through the e-mail provider's inbound webhook.
    path("webhooks/email/", include("helpcenter.inbound_urls")),
    path("webhooks/", include("transactions.webhook_urls")),
    path("dev/outbox/", dev_outbox, name="dev_outbox"),
    path("", include("transactions.urls")),
]
