"""``{{ run|run_duration }}``: how long an import run took, in words a person reads at a glance."""

from django import template

register = template.Library()


@register.filter
def run_duration(run) -> str:
    if run.finished_at is None:
        return "running"
    seconds = max(0, round((run.finished_at - run.started_at).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
