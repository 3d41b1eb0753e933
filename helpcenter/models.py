# --- Luma U (helpcenter/luma_u/) ---
from .luma_u.models import LessonProgress, TrackCompletion  # noqa: F401
# --- end Luma U ---
