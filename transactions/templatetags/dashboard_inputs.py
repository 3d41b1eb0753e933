"""The dashboard filter form's choice inputs, written in Python: the same HTML a template loop
writes, for a fraction of its time (the signed-in dashboard's throughput is measured by
`make bench`)."""

from django import template
from django.utils.safestring import mark_safe

from lumapay import html

register = template.Library()


@register.simple_tag
def checkbox_list(name, choices, chosen, errors=None):
    """A checkbox per (value, label) of ``choices``, checked when the value is in ``chosen``."""
    e = html.text
    name = e(name)
    boxes = "".join(
        f'\n<label for="id_{name}_{index}"><input type="checkbox" name="{name}" value="{e(value)}" '
        f'id="id_{name}_{index}"{" checked" if value in chosen else ""}> {e(label)}</label>'
        for index, (value, label) in enumerate(choices)
    )
    return mark_safe(f'<div class="checks-list" id="id_{name}">{boxes}\n</div>{e(errors) if errors else ""}')


@register.simple_tag
def select_field(name, label, choices, chosen, errors=None):
    """A labelled select of ``choices``, the option whose value is ``chosen`` selected."""
    e = html.text
    name = e(name)
    options = "".join(
        f'<option value="{e(value)}"{" selected" if value == chosen else ""}>{e(text)}</option>'
        for value, text in choices
    )
    return mark_safe(
        f'<label for="id_{name}">{e(label)}</label>\n<select name="{name}" id="id_{name}">{options}</select>'
        f'{e(errors) if errors else ""}'
    )
