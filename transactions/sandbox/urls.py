"""The Sandbox processor's hosted checkout: it stands for the processor's own site."""

from django.urls import path

from . import views

app_name = "sandbox"

urlpatterns = [
    path("checkout/<str:session_id>/", views.checkout, name="checkout"),
    path("checkout/<str:session_id>/authenticate/", views.authenticate, name="authenticate"),
    path("card/<str:session_id>/", views.card_setup, name="card_setup"),
    path("card/<str:session_id>/authenticate/", views.card_setup_authenticate, name="card_setup_authenticate"),
]
