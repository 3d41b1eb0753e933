from django import template

register = template.Library()


@register.filter
def phone(value: str) -> str:
    """{{ "+12175550100"|phone }} → (217) 555-0100; other countries' numbers stay in E.164."""
    if value and len(value) == 12 and value.startswith("+1") and value[1:].isdigit():
        return f"({value[2:5]}) {value[5:8]}-{value[8:]}"
    return value or ""
