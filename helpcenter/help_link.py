"""The header's "Help for this page": the article that lists the current page's URL name in its
front matter, else the Help Center. Read from the article files once per process (no query)."""

from urllib.parse import urlencode

from django.urls import reverse

from .articles import help_page_links


def help_for_this_page(request):
    if getattr(request, "membership", None) is None:
        return {}
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match is not None else ""
    slug = help_page_links().get(view_name)
    if slug:
        url = reverse("helpcenter:article", args=[slug])
        # The ticket form learns which page the member was on (the path, never a query string).
        if not view_name.startswith("helpcenter:"):
            url = f"{url}?{urlencode({'from': request.path})}"
        return {"help_page_url": url, "help_page_has_article": True}
    return {"help_page_url": reverse("helpcenter:index"), "help_page_has_article": False}
