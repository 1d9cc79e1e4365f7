from django import forms
from django.utils.translation import gettext_lazy as _

from training.base_models import training_defaults
from training.options import ERROR_RESOLUTION, METHODS, MODES, OPTIONS

METHOD_LABELS = {
    "dpo": _("Diffusion-DPO"),
    "mapo": _("MaPO (reference-free)"),
    "rankdpo": _("RankDPO (ranked exports)"),
}
MODE_LABELS = {"lora": _("LoRA adapters"), "full": _("Full UNet")}


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


class TrainingStartForm(forms.Form):
    """The common trainer settings; everything else keeps the trainer's documented defaults.

    Blank numbers mean "the trainer's default", which for the learning rate and the LoRA rank
    depends on the mode (training.trainer.config); blank steps and resolution mean the chosen
    base model's defaults (its native resolution, training.base_models). The form starts
    from the first model's defaults; training_start.js follows the model chosen."""

    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    pretrained = forms.ChoiceField(
        label=_("Base model"),
        help_text=_("Pipelines found in the server's model folders (PICKWISE_MODEL_ROOTS)."),
    )
    method = forms.ChoiceField(
        label=_("Objective"),
        choices=[(method, METHOD_LABELS[method]) for method in METHODS],
    )
    mode = forms.ChoiceField(
        label=_("Weights"), choices=[(mode, MODE_LABELS[mode]) for mode in MODES]
    )
    max_train_steps = forms.IntegerField(
        label=_("Steps"), min_value=1, max_value=1_000_000, required=False
    )
    train_batch_size = forms.IntegerField(
        label=_("Pairs per step"),
        min_value=1,
        max_value=1024,
        initial=OPTIONS["train_batch_size"].default,
    )
    resolution = forms.IntegerField(
        label=_("Resolution"),
        max_value=4096,
        required=False,
        help_text=_("Pixels, a positive multiple of 8; blank: the base model's native size."),
    )
    learning_rate = forms.FloatField(
        label=_("Learning rate"), min_value=1e-12, max_value=1.0, required=False
    )
    beta = forms.FloatField(
        label=_("DPO beta"), min_value=1e-6, initial=OPTIONS["beta"].default, required=False
    )
    lora_rank = forms.IntegerField(
        label=_("LoRA rank"), min_value=1, max_value=1024, required=False
    )
    gradient_checkpointing = forms.BooleanField(
        label=_("Gradient checkpointing (less memory, slower)"), required=False
    )

    OPTION_FIELDS = (
        "max_train_steps",
        "train_batch_size",
        "resolution",
        "learning_rate",
        "beta",
        "lora_rank",
        "gradient_checkpointing",
    )

    def __init__(self, *args, model_folders: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pretrained"].choices = [(str(path), str(path)) for path in model_folders]
        # Resolution and steps per base model, for the initial values and the page's script.
        self.model_defaults = {str(path): training_defaults(path) for path in model_folders}
        if model_folders:
            for name, value in self.model_defaults[str(model_folders[0])].items():
                self.fields[name].initial = value

    def clean_resolution(self):
        value = self.cleaned_data.get("resolution")
        if value is not None and (value <= 0 or value % 8):
            raise forms.ValidationError(ERROR_RESOLUTION.format(value=value))
        return value

    def options(self) -> dict:
        """The trainer options the form sets; blank steps and resolution take the base
        model's defaults, other blanks are left to the trainer's defaults."""
        values = {name: self.cleaned_data.get(name) for name in self.OPTION_FIELDS}
        for name, value in self.model_defaults.get(self.cleaned_data["pretrained"], {}).items():
            if values.get(name) is None:
                values[name] = value
        return {name: value for name, value in values.items() if value not in (None, "")}


class EvaluationSizeForm(forms.Form):
    """Size and judges of an evaluation campaign: what its interval width depends on."""

    prompts = forms.IntegerField(
        label=_("Held-out prompts"),
        min_value=1,
        max_value=1000,
        required=False,
        help_text=_("Blank: every held-out prompt of the export."),
    )
    seeds_per_prompt = forms.IntegerField(
        label=_("Seeds per prompt"),
        min_value=1,
        max_value=64,
        initial=2,
        help_text=_("One base-vs-tuned pair per prompt and seed."),
    )
    overlap = forms.IntegerField(
        label=_("Judgments per comparison"),
        min_value=1,
        max_value=100,
        initial=3,
        help_text=_("At most one per judge: capped at the number of judges."),
    )
    judges = forms.CharField(
        label=_("Judges"),
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "Usernames or e-mails, one a line; they become the campaign's annotators. "
            "Blank: the source campaign's annotators who are not blocked."
        ),
    )


class EvaluationForm(EvaluationSizeForm):
    """Size, judges and sampling settings of an evaluation campaign."""

    steps = forms.IntegerField(label=_("Sampling steps"), min_value=1, max_value=1000, initial=25)
    guidance = forms.FloatField(label=_("Guidance"), min_value=0.0, max_value=50.0, initial=7.5)
    seed = forms.IntegerField(label=_("Seed"), min_value=0, max_value=2**31 - 1, initial=0)

    SERVICE_FIELDS = ("prompts", "seeds_per_prompt", "overlap", "steps", "guidance", "seed")

    def service_options(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.SERVICE_FIELDS}
