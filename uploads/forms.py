from django import forms

from .enums import ImportMode
from .file_reading import UPLOAD_MAX_BYTES, UploadKind

ACCEPTED_EXTENSIONS = (".csv", ".xlsx")


def size_in_words(size_bytes: int) -> str:
    return f"{size_bytes / (1024 * 1024):.0f} MB"


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label="What the file holds", choices=UploadKind.choices)
    file = forms.FileField(
        label="File (CSV or Excel .xlsx)",
        help_text=f"Up to {size_in_words(UPLOAD_MAX_BYTES)}. Use a template below: its first row names the columns.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ACCEPTED_EXTENSIONS)}),
    )

    def clean_file(self):
        file = self.cleaned_data["file"]
        if not file.name.lower().endswith(ACCEPTED_EXTENSIONS):
            raise forms.ValidationError("Choose a CSV file (.csv) or an Excel workbook (.xlsx).")
        if file.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"This file is {size_in_words(file.size)}; the largest file the Upload Center takes is "
                f"{size_in_words(UPLOAD_MAX_BYTES)}. Split it into smaller files."
            )
        if file.size == 0:
            raise forms.ValidationError("This file is empty.")
        return file


class ImportForm(forms.Form):
    mode = forms.ChoiceField(choices=ImportMode.choices)
