# --- Help Center: articles and support tickets (helpcenter/help_models.py) ---
from .help_models import HelpArticle, SupportTicket, TicketAttachment, TicketMessage  # noqa: F401

# --- end Help Center ---
# --- Luma U (helpcenter/luma_u/) ---
from .luma_u.models import LessonProgress, TrackCompletion  # noqa: F401

# --- end Luma U ---
