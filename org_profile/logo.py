"""The organization's logo: an upload checked by what it is (not by its name), decoded safely and
stored as a small PNG that pay pages and PDF receipts show inline."""

from __future__ import annotations

import io
import warnings

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from lumapay.errors import ApplicationError

# Stored at most this many pixels a side: sharp in a page header or on a receipt, a few kilobytes.
LOGO_MAX_SIDE = 512
# An image that claims more pixels than this is refused before it is decoded (a "pixel bomb":
# a small file that would unpack to gigabytes).
LOGO_MAX_PIXELS = 25_000_000
LOGO_FORMATS = {"PNG", "JPEG", "WEBP"}


class LogoRefused(ApplicationError):
    """The upload is not a logo LumaPay can use; the message says why. Nothing was stored."""


def logo_png_from_upload(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """The PNG to store for an uploaded logo, and its size. Raises ``LogoRefused``."""
    limit = settings.ORGANIZATION_LOGO_MAX_BYTES
    if not data:
        raise LogoRefused("Choose an image file for the logo.")
    if len(data) > limit:
        raise LogoRefused(f"The logo is too large: use a file of at most {limit // (1024 * 1024) or 1} MB.")
    with warnings.catch_warnings():
        # Pillow warns about (then refuses) huge images; its own limit is larger than ours.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                kind = probe.format
                width, height = probe.size
                if kind not in LOGO_FORMATS:
                    raise LogoRefused("Use a PNG, JPEG or WebP image for the logo.")
                if width * height > LOGO_MAX_PIXELS:
                    raise LogoRefused("The logo has too many pixels: use an image of at most 5000 × 5000.")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)  # an animated image: its first frame
                # A JPEG decodes straight to a reduced size (less memory for a large photo).
                image.draft("RGB", (LOGO_MAX_SIDE * 2, LOGO_MAX_SIDE * 2))
                image = ImageOps.exif_transpose(image)
                image.thumbnail((LOGO_MAX_SIDE, LOGO_MAX_SIDE), Image.Resampling.LANCZOS)
                # Only the pixels are kept: no colour profile, text chunks or EXIF carried over
                # (an uploaded profile could be any bytes, shown to every patient).
                pixels = Image.new("RGBA", image.size)
                pixels.paste(image.convert("RGBA"))
                out = io.BytesIO()
                pixels.save(out, format="PNG", optimize=True)
                return out.getvalue(), pixels.size
        except LogoRefused:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise LogoRefused("That file is not an image LumaPay can read: use a PNG, JPEG or WebP image.") from None
        except (OSError, SyntaxError, ValueError):
            raise LogoRefused("That image is damaged or incomplete: save it again and upload it.") from None
