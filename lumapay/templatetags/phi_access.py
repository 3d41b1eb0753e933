from django import template

from ..phi_access import page_label

register = template.Library()


@register.filter
def phi_page_label(page: str) -> str:
    """The name people read for a page in the PHI access log ("Patient Hub")."""
    return page_label(page)
