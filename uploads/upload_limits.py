"""The size limit on an uploaded file, enforced while the request's body is read, before a byte
past the limit is kept (the form checks the size again, for a file whose request did not say
its length)."""

from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from .file_reading import UPLOAD_MAX_BYTES

# Room for the form's other fields and the multipart boundaries around the file.
REQUEST_OVERHEAD_BYTES = 64 * 1024


def request_too_large(request) -> bool:
    """True when the request says its body is larger than a file the Upload Center takes."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > UPLOAD_MAX_BYTES + REQUEST_OVERHEAD_BYTES


class SizeLimitedUploadHandler(FileUploadHandler):
    """Stops reading the body once a file passes ``UPLOAD_MAX_BYTES`` and marks the request."""

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > UPLOAD_MAX_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None
