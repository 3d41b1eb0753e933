# The Help Center's admin: support tickets and articles (help_admin.py).
from . import help_admin  # noqa: F401
