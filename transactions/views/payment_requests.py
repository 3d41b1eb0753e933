from django.http import Http404


def payment_request_new(request, patient_pk):
    raise Http404


def payment_request_detail(request, pk):
    raise Http404


def payment_request_resend(request, pk):
    raise Http404


def payment_request_cancel(request, pk):
    raise Http404
