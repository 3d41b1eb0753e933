"""The Sandbox processor's hosted checkout: it stands for the processor's own site."""

from django.urls import path

from .views import sandbox_checkout

app_name = "sandbox"

urlpatterns = [
    path("checkout/<str:session_id>/", sandbox_checkout.checkout, name="checkout"),
    path("checkout/<str:session_id>/authenticate/", sandbox_checkout.authenticate, name="authenticate"),
]
