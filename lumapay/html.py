"""HTML written in Python on a hot path (the dashboard's rows, chart and filter inputs).

``format_html`` escapes each argument through ``conditional_escape``, whose lazy-argument checks
cost more than the escaping itself: for the few hundred values of a dashboard page that is more
than a template loop. ``text`` is ``conditional_escape`` without them: what has ``__html__``
(``mark_safe``, ``format_html``, a form's error list) is taken as HTML, anything else escaped
exactly as ``django.utils.html.escape`` does (``html.escape`` with quotes).
"""

from html import escape as _escape


def text(value) -> str:
    """``value`` as HTML text: escaped, unless it is HTML already."""
    if value.__class__ is str:
        return _escape(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return _escape(str(value))
