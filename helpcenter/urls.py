from .help_urls import urlpatterns as help_urlpatterns

app_name = "helpcenter"

urlpatterns = [
    # The Help Center and support tickets (help_urls.py).
    *help_urlpatterns,
]
