from django import forms
from django.utils.translation import gettext_lazy as _


class GateOverrideForm(forms.Form):
    """An admin's block or unblock of a rater; the reason goes into the audit log."""

    action = forms.ChoiceField(choices=[("block", _("Block")), ("unblock", _("Unblock"))])
    reason = forms.CharField(
        label=_("Reason"),
        min_length=3,
        max_length=500,
        strip=True,
        help_text=_("Recorded with the change and shown to the rater when blocked."),
    )
