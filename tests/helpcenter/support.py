"""Files for the ticket tests, built here (never taken from outside)."""

from django.core.files.uploadedfile import SimpleUploadedFile

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WINDOWS_PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def ticket_data(**overrides) -> dict:
    data = {
        "subject": "Export button does nothing",
        "category": "bug",
        "body": "I press Export on the dashboard and nothing downloads.",
        "page": "",
    }
    data.update(overrides)
    return data
