"""The support ticket's forms. The checks on attachments are the service's (tickets.py)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from .help_enums import TicketCategory


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if not data:
            return []
        items = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items]


class TicketForm(forms.Form):
    subject = forms.CharField(label=_("Subject"), max_length=200)

    def clean_subject(self):
        # One line: the subject goes into the answer e-mail's Subject header.
        return " ".join(self.cleaned_data["subject"].split())
    category = forms.ChoiceField(label=_("What is it about?"), choices=TicketCategory.choices)
    body = forms.CharField(
        label=_("Your message"),
        widget=forms.Textarea(attrs={"rows": 8}),
        max_length=20_000,
        help_text=_("What you did, what you expected, and what happened instead."),
    )
    files = MultipleFileField(
        label=_("Attachments"),
        required=False,
        help_text=_("Screenshots or documents: PDF, PNG, JPEG, GIF, WebP or plain text."),
    )
    contains_patient_information = forms.BooleanField(
        label=_("This ticket contains patient information"),
        required=False,
        help_text=_("Tick it if you could not leave patient details out. LumaPay support then handles it as protected health information."),
    )
    page = forms.CharField(widget=forms.HiddenInput, required=False, max_length=600)


class ReplyForm(forms.Form):
    body = forms.CharField(label=_("Your reply"), widget=forms.Textarea(attrs={"rows": 5}), max_length=20_000)
    files = MultipleFileField(label=_("Attachments"), required=False)


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search the Help Center"), max_length=200, required=False)
