"""Every template's comments are ones Django understands: ``{# … #}`` only on one line (a comment
that spans lines is printed to the page as text), ``{% comment %}`` for longer ones."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_SUFFIXES = {".html", ".txt"}


def _templates():
    for path in BASE_DIR.rglob("*"):
        if path.suffix in TEMPLATE_SUFFIXES and "templates" in path.parts and ".venv" not in path.parts:
            yield path


def test_no_template_has_a_one_line_comment_that_spans_lines():
    spanning = [
        f"{path.relative_to(BASE_DIR)}:{number}"
        for path in _templates()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "{#" in line and "#}" not in line.split("{#", 1)[1]
    ]

    assert spanning == []


def test_the_templates_are_found():
    assert any(path.name == "checkout.html" for path in _templates())
