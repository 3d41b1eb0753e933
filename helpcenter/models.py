# The Help Center's articles and support tickets.
from .help_models import HelpArticle, SupportTicket, TicketAttachment, TicketMessage  # noqa: F401
