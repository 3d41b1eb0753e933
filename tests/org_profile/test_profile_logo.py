"""The logo: an upload is checked by its content (not its name), refused with a reason when it
is not a PNG, JPEG or WebP image, too large, damaged or a pixel bomb, and stored as a PNG of at
most 512 pixels a side."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from lumapay.enums import AuditAction
from lumapay.models import AuditEvent
from org_profile.logo import LogoRefused, logo_png_from_upload
from org_profile.models import Organization

pytestmark = pytest.mark.django_db

URL = reverse("organization_logo")


def image_bytes(kind: str, size=(1200, 600), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (11, 122, 117) if mode == "RGB" else 1).save(out, format=kind)
    return out.getvalue()


def _upload(client, data: bytes, name: str = "logo.png", content_type: str = "image/png"):
    return client.post(URL, {"logo": SimpleUploadedFile(name, data, content_type=content_type)})


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP"])
def test_a_logo_is_resized_and_stored_as_png(client_for, organization, administrator, kind):
    response = _upload(client_for(administrator), image_bytes(kind), name=f"logo.{kind.lower()}")

    assert response.status_code == 302 and response["Location"] == reverse("organization_profile")
    stored = Organization.objects.get(pk=organization.pk)
    with Image.open(io.BytesIO(bytes(stored.logo_png))) as image:
        assert (image.format, image.size) == ("PNG", (512, 256))
    assert stored.logo_data_uri.startswith("data:image/png;base64,")
    event = AuditEvent.objects.get()
    assert (event.action, event.changes) == (AuditAction.ORGANIZATION_PUBLIC_CHANGED, {"logo": [None, "a 512×256 PNG"]})


def test_a_small_logo_is_not_enlarged(organization, administrator):
    png, size = logo_png_from_upload(image_bytes("PNG", size=(120, 40)))
    assert size == (120, 40)


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b"%PDF-1.7 not an image at all", "logo.png", "That file is not an image LumaPay can read: use a PNG, JPEG or WebP image."),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "logo.svg",
         "That file is not an image LumaPay can read: use a PNG, JPEG or WebP image."),
        (image_bytes("GIF"), "logo.png", "Use a PNG, JPEG or WebP image for the logo."),
        (image_bytes("BMP", size=(200, 100)), "logo.jpg", "Use a PNG, JPEG or WebP image for the logo."),
        (image_bytes("PNG")[:300], "logo.png", "That image is damaged or incomplete: save it again and upload it."),
        (b"", "logo.png", "Choose an image file for the logo."),
    ],
)  # fmt: skip
def test_what_is_not_a_usable_image_is_refused(client_for, organization, administrator, data, name, message):
    response = _upload(client_for(administrator), data, name=name)

    assert response.status_code == 400
    assert response.context["logo_form"].errors["logo"] == [message]
    assert message in response.content.decode().replace("&#x27;", "'")
    assert Organization.objects.get(pk=organization.pk).logo_png is None
    assert not AuditEvent.objects.exists()


def test_a_file_over_the_size_limit_is_refused(client_for, organization, administrator, settings):
    settings.ORGANIZATION_LOGO_MAX_BYTES = 1024 * 1024
    noisy = io.BytesIO()
    Image.frombytes("RGB", (800, 800), bytes(range(256)) * (800 * 800 * 3 // 256)).save(noisy, format="PNG")
    data = noisy.getvalue() + b"\0" * (1024 * 1024)

    response = _upload(client_for(administrator), data)

    assert response.status_code == 400
    assert response.context["logo_form"].errors["logo"] == ["The logo is too large: use a file of at most 1 MB."]
    with pytest.raises(LogoRefused):
        logo_png_from_upload(data)


def test_a_pixel_bomb_is_refused_before_it_is_decoded(organization, administrator, client_for):
    # 6000 × 6000 one-bit pixels: a few kilobytes of PNG that would decode to 36 million pixels.
    bomb = image_bytes("PNG", size=(6000, 6000), mode="1")
    assert len(bomb) < 100_000

    response = _upload(client_for(administrator), bomb)

    assert response.context["logo_form"].errors["logo"] == ["The logo has too many pixels: use an image of at most 5000 × 5000."]
    assert Organization.objects.get(pk=organization.pk).logo_png is None


def test_the_logo_is_removed(client_for, organization, administrator):
    client = client_for(administrator)
    _upload(client, image_bytes("PNG"))

    response = client.post(URL, {"remove": ""})

    assert response.status_code == 302
    assert Organization.objects.get(pk=organization.pk).logo_png is None
    assert AuditEvent.objects.order_by("-id").first().changes == {"logo": ["a logo", None]}


def test_the_profile_shows_the_logo_inline(client_for, organization, administrator):
    client = client_for(administrator)
    _upload(client, image_bytes("PNG"))

    body = client.get(reverse("organization_profile")).content.decode()

    assert '<img src="data:image/png;base64,' in body


def test_only_the_pixels_are_kept_never_an_uploaded_colour_profile_or_text():
    import io as _io
    import os as _os

    from PIL import Image as _Image
    from PIL import PngImagePlugin as _Png

    from org_profile.logo import logo_png_from_upload

    junk_profile = _os.urandom(300_000)
    upload = _io.BytesIO()
    info = _Png.PngInfo()
    info.add_text("Comment", "anything at all " * 1000)
    _Image.new("RGB", (20, 20), "teal").save(upload, format="PNG", icc_profile=junk_profile, pnginfo=info)

    stored, size = logo_png_from_upload(upload.getvalue())

    assert size == (20, 20)
    assert len(stored) < 2_000 and junk_profile[:64] not in stored and b"anything at all" not in stored
    assert "icc_profile" not in _Image.open(_io.BytesIO(stored)).info
