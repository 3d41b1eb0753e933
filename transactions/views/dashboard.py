from django.http import Http404


def transaction_list(request):
    raise Http404


def transaction_detail(request, pk):
    raise Http404


def transaction_refund(request, pk):
    raise Http404
