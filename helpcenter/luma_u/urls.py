from django.urls import path

from . import views

app_name = "luma_u"

urlpatterns = [
    path("", views.track, name="track"),
    path("lessons/<slug:slug>/", views.lesson, name="lesson"),
    path("lessons/<slug:slug>/quiz/", views.lesson_quiz, name="lesson_quiz"),
    path("certificate.pdf", views.certificate, name="certificate"),
    path("team/", views.team, name="team"),
    path("certificates/verify/", views.certificate_verify, name="certificate_verify"),
]
