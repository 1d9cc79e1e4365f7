"""Forms of the prompts page: pasted lines or an uploaded file."""

from django import forms
from django.utils.translation import gettext_lazy as _

from annotate.services.prompts import FORMATS

# Pasted text: a generous page-size bound; the request itself is capped at
# DATA_UPLOAD_MAX_MEMORY_SIZE, and the service caps the number of prompts.
MAX_PASTE_CHARS = 2_000_000
FILE_FORMATS = [("", _("From the file name")), *[(fmt, fmt) for fmt in FORMATS]]


class PromptsPasteForm(forms.Form):
    text = forms.CharField(
        label=_("Prompts, one per line"),
        max_length=MAX_PASTE_CHARS,
        widget=forms.Textarea(
            attrs={"rows": 8, "placeholder": "a red fox in fresh snow at dawn\na paper boat"}
        ),
    )


class PromptsUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Prompt file"),
        help_text=_(
            "txt: one prompt a line. csv: a “text” column, optional “negative_prompt”; other "
            'columns are kept as metadata. jsonl: one {"text": ...} object a line. json: a '
            "list of those."
        ),
    )
    format = forms.ChoiceField(label=_("Format"), choices=FILE_FORMATS, required=False)
