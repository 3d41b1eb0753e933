from django.urls import path

from .views import (
    automation,
    dashboard,
    ehr_postings,
    exports,
    payment_plans,
    payment_requests,
    saved_cards,
    stripe_connect,
    transaction_detail,
)

app_name = "transactions"

urlpatterns = [
    path("", dashboard.transaction_list, name="dashboard"),
    path("transactions/export/", exports.transaction_export_create, name="export_create"),
    path("transactions/exports/", exports.transaction_export_list, name="export_list"),
    path("transactions/exports/<int:pk>/", exports.transaction_export_detail, name="export_detail"),
    path("transactions/exports/<int:pk>/download/", exports.transaction_export_download, name="export_download"),
    path("transactions/<int:pk>/", transaction_detail.transaction_detail, name="transaction_detail"),
    path("transactions/<int:pk>/refund/", transaction_detail.transaction_refund, name="transaction_refund"),
    path(
        "transactions/<int:pk>/ehr-postings/<int:posting_pk>/retry/",
        ehr_postings.ehr_posting_retry_view,
        name="ehr_posting_retry",
    ),
    path("transactions/ehr-posting-files/", ehr_postings.ehr_posting_file_list, name="ehr_posting_files"),
    path(
        "transactions/ehr-posting-files/<str:day>/",
        ehr_postings.ehr_posting_file_download,
        name="ehr_posting_file_download",
    ),
    path("transactions/<int:pk>/capture/", saved_cards.transaction_capture, name="transaction_capture"),
    path("transactions/<int:pk>/release/", saved_cards.transaction_release, name="transaction_release"),
    path("appointments/<int:pk>/check-in/", saved_cards.appointment_check_in_view, name="appointment_check_in"),
    path("cards/<int:pk>/charge/", saved_cards.saved_card_charge_view, name="saved_card_charge"),
    path("cards/<int:pk>/hold/", saved_cards.saved_card_hold, name="saved_card_hold"),
    path("cards/<int:pk>/remove/", saved_cards.saved_card_remove_view, name="saved_card_remove"),
    path("transactions/<int:pk>/receipt.pdf", transaction_detail.transaction_receipt, name="transaction_receipt"),
    path(
        "patients/<int:patient_pk>/request-payment/",
        payment_requests.payment_request_new,
        name="payment_request_new",
    ),
    path("patients/<int:patient_pk>/payment-plan/", payment_plans.payment_plan_new, name="payment_plan_new"),
    path("payment-plans/<int:pk>/cancel/", payment_plans.payment_plan_cancel_view, name="payment_plan_cancel"),
    path("payment-requests/<int:pk>/", payment_requests.payment_request_detail, name="payment_request_detail"),
    path("payment-requests/<int:pk>/resend/", payment_requests.payment_request_resend, name="payment_request_resend"),
    path("payment-requests/<int:pk>/cancel/", payment_requests.payment_request_cancel, name="payment_request_cancel"),
    path("payment-requests/<int:pk>/unlock/", payment_requests.payment_request_unlock, name="payment_request_unlock"),
    path(
        "payment-requests/<int:pk>/fresh-link/",
        payment_requests.payment_request_replace_link,
        name="payment_request_replace_link",
    ),
    path("settings/stripe/", stripe_connect.stripe_connect, name="stripe_connect"),
    path("settings/collection-rules/", automation.collection_rules, name="collection_rules"),
    path("automation/", automation.automation, name="automation"),
]
