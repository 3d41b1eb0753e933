"""The patient's pay page, reached from the link in a payment request's e-mail or SMS."""

from django.urls import path

from .views import pay_page, pay_plans

app_name = "pay"

urlpatterns = [
    path("<str:token>/", pay_page.verify, name="verify"),
    path("<str:token>/details/", pay_page.details, name="details"),
    path("<str:token>/checkout/", pay_page.checkout, name="checkout"),
    path("<str:token>/done/", pay_page.done, name="done"),
    path("<str:token>/receipt.pdf", pay_page.receipt, name="receipt"),
    path("<str:token>/cancelled/", pay_page.cancelled, name="cancelled"),
    path("<str:token>/save-card/", pay_page.card_save, name="card_save"),
    path("<str:token>/card-saved/", pay_page.card_saved, name="card_saved"),
    path("<str:token>/remove-card/", pay_page.card_remove, name="card_remove"),
    path("<str:token>/plan/", pay_plans.plan, name="plan"),
]
