"""HTML written in Python on the dashboard's hot path escapes as Django's templates do."""

from django.forms.utils import ErrorList
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from lumapay import html


def test_text_is_escaped_as_the_template_language_escapes_it():
    values = ["Ruiz & O'Neil <b>\"x\"</b>", 4250, gettext_lazy("Succeeded"), ""]

    assert [html.text(value) for value in values] == [str(conditional_escape(value)) for value in values]
    assert html.text("Ruiz & O'Neil <b>") == "Ruiz &amp; O&#x27;Neil &lt;b&gt;"


def test_html_already_made_is_left_as_it_is():
    errors = ErrorList(["Enter a valid date."])

    assert html.text(mark_safe("<span>—</span>")) == "<span>—</span>"
    assert html.text(errors) == str(errors) == str(conditional_escape(errors))
