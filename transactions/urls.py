from django.urls import path

from .views import dashboard, payment_requests, transaction_detail

app_name = "transactions"

urlpatterns = [
    path("", dashboard.transaction_list, name="dashboard"),
    path("transactions/<int:pk>/", transaction_detail.transaction_detail, name="transaction_detail"),
    path("transactions/<int:pk>/refund/", transaction_detail.transaction_refund, name="transaction_refund"),
    path(
        "patients/<int:patient_pk>/request-payment/",
        payment_requests.payment_request_new,
        name="payment_request_new",
    ),
    path("payment-requests/<int:pk>/", payment_requests.payment_request_detail, name="payment_request_detail"),
    path("payment-requests/<int:pk>/resend/", payment_requests.payment_request_resend, name="payment_request_resend"),
    path("payment-requests/<int:pk>/cancel/", payment_requests.payment_request_cancel, name="payment_request_cancel"),
]
