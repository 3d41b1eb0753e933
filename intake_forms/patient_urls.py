"""The patient's intake form, reached from its signed link (e-mail, SMS, or the copay request's pay page)."""

from django.urls import path

from . import patient_views

app_name = "form"

urlpatterns = [
    path("<str:token>/", patient_views.verify, name="verify"),
    path("<str:token>/fill/", patient_views.fill, name="fill"),
    path("<str:token>/payment/", patient_views.payment_return, name="payment_return"),
]
