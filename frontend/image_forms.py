"""Forms of the images page: generators to run, or an image import to upload."""

from django import forms
from django.utils.translation import gettext_lazy as _

from generation.backends.spec import KARRAS_SCHEDULERS, MAX_SIZE, MAX_STEPS, MIN_SIZE
from generation.models import MAX_SEEDS_PER_PROMPT

SCHEDULER_CHOICES = [("", _("The pipeline's own")), *[(s, s) for s in sorted(KARRAS_SCHEDULERS)]]


class ImagesGenerateForm(forms.Form):
    sources = forms.MultipleChoiceField(
        label=_("Models"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Each picked model draws every prompt; pairs are made across models."),
    )
    seeds_per_prompt = forms.IntegerField(
        label=_("Seeds per prompt"), min_value=1, max_value=MAX_SEEDS_PER_PROMPT, initial=1
    )
    steps = forms.IntegerField(label=_("Steps"), min_value=1, max_value=MAX_STEPS, initial=25)
    width = forms.IntegerField(
        label=_("Width"), min_value=MIN_SIZE, max_value=MAX_SIZE, initial=512, step_size=8
    )
    height = forms.IntegerField(
        label=_("Height"), min_value=MIN_SIZE, max_value=MAX_SIZE, initial=512, step_size=8
    )
    scheduler = forms.ChoiceField(label=_("Scheduler"), choices=SCHEDULER_CHOICES, required=False)
    guidance = forms.FloatField(label=_("Guidance"), min_value=0.0, max_value=50.0, initial=7.5)

    def __init__(self, *args, sources: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sources"].choices = sources


class ImagesImportForm(forms.Form):
    file = forms.FileField(
        label=_("Import file"),
        help_text=_(
            "A .zip with manifest.csv (columns prompt, file, model_name, optional seed) and "
            "the images it names, or a Pick-a-Pic .parquet file."
        ),
    )
    with_labels = forms.BooleanField(
        label=_("Import the parquet file's labels as judgments"), required=False
    )
    build = forms.BooleanField(
        label=_("Build comparisons from the imported images"), required=False, initial=True
    )
