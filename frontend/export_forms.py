"""The exports page's form: format, criterion, the quality policy and the splits."""

from django import forms
from django.utils.translation import gettext_lazy as _

from exports.formats import EXPORT_FORMATS
from exports.policy import INCLUDABLE_STATES, Policy
from exports.splits import DEFAULTS as SPLIT_DEFAULTS


class ExportStartForm(forms.Form):
    format = forms.ChoiceField(
        label=_("Format"),
        widget=forms.RadioSelect,
        choices=[(fmt.key, fmt.label) for fmt in EXPORT_FORMATS],
        initial=EXPORT_FORMATS[0].key,
    )
    criterion = forms.ChoiceField(label=_("Criterion"))
    states = forms.MultipleChoiceField(
        label=_("Raters whose judgments are kept"),
        widget=forms.CheckboxSelectMultiple,
        choices=[(state, state) for state in INCLUDABLE_STATES],
        initial=list(Policy.states),
        help_text=_("Blocked raters are never exported."),
    )
    include_gold = forms.BooleanField(label=_("Keep gold checks (JSON lines only)"), required=False)
    include_repeats = forms.BooleanField(label=_("Keep repeats (JSON lines only)"), required=False)
    consensus = forms.ChoiceField(
        label=_("Consensus per pair and comparison (every format)"),
        choices=[
            ("dawid_skene", _("Dawid-Skene, raters weighted by their accuracy")),
            ("majority", _("Majority of votes")),
        ],
        initial=Policy.consensus,
    )
    contested_below = forms.FloatField(
        label=_("Mark a pair or ranking contested below this confidence"),
        min_value=0.5,
        max_value=1.0,
        initial=Policy.contested_below,
    )
    validation = forms.FloatField(
        label=_("Validation share of prompts"),
        min_value=0.0,
        max_value=0.5,
        initial=SPLIT_DEFAULTS["validation"],
    )
    test = forms.FloatField(
        label=_("Test share of prompts (held out for evaluation)"),
        min_value=0.0,
        max_value=0.5,
        initial=SPLIT_DEFAULTS["test"],
    )
    seed = forms.IntegerField(label=_("Split seed"), min_value=0, max_value=2**63 - 1, initial=0)
    also = forms.TypedMultipleChoiceField(
        label=_("Combine with these campaigns into one dataset"),
        widget=forms.CheckboxSelectMultiple,
        coerce=int,
        required=False,
        help_text=_(
            "Pick-a-Pic or image preference. Prompts with the same text are one prompt and a "
            "recurring pair of images is one pair; the manifest lists every campaign."
        ),
    )

    def __init__(self, *args, criteria: list[dict], combinable=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["criterion"].choices = [(c["key"], c["question"]) for c in criteria]
        self.fields["also"].choices = [(c.pk, f"{c.title} ({c.slug})") for c in combinable]

    def export_options(self) -> dict:
        """Keyword arguments of exports.services.export_create."""
        values = self.cleaned_data
        return {
            "format": values["format"],
            "criterion": values["criterion"],
            "seed": values["seed"],
            "policy": {
                "states": values["states"],
                "exclude_gold": not values["include_gold"],
                "exclude_repeats": not values["include_repeats"],
                "consensus": values["consensus"],
                "contested_below": values["contested_below"],
            },
            "splits": {"validation": values["validation"], "test": values["test"]},
        }
