from django.urls import path

from . import views

app_name = "payouts"

urlpatterns = [
    path("", views.payout_list, name="list"),
    path("export/", views.payout_export, name="export"),
    path("<int:pk>/", views.payout_detail, name="detail"),
]
