from django.http import Http404


def patient_hub(request):
    raise Http404


def patient_new(request):
    raise Http404


def patient_profile(request, pk):
    raise Http404


def patient_edit(request, pk):
    raise Http404
