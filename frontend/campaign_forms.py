"""The campaign settings form: plain words and units people think in (minutes, percent).

The form only shapes input; the rules (k per kind, criteria, gold) are the services'.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from annotate.criteria import CRITERION_KEY, MAX_CRITERIA, PRESET_CRITERIA
from annotate.models import ACTIVE_SAMPLING_PAIRWISE_ONLY, Campaign

MAX_INSTRUCTIONS_CHARS = 20_000
CUSTOM_ROWS = 3
MAX_CRITERION_ROWS = len(PRESET_CRITERIA) + MAX_CRITERIA
NO_CRITERION = "Pick at least one criterion."
CRITERION_INCOMPLETE = "A picked criterion needs a key and a question."
RANKING_K = "A ranking campaign ranks 3 to 9 images."
MAX_BELOW_MIN = "The most judgments must be at least the fewest."
CONFIDENCE_PERCENT = "The confidence must be above 50% and below 100%."


def _percent(rate: float) -> float | int:
    """A rate as the percent people type: 2 rather than 2.0, 2.5 where it is not whole."""
    value = round(100 * rate, 2)
    return int(value) if value == int(value) else value


def _model_default(name: str):
    """A new campaign's value as the model gives it, so the form starts where the model does."""
    return Campaign._meta.get_field(name).default


class CampaignForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    slug = forms.SlugField(
        label=_("Short name"),
        max_length=64,
        required=False,
        help_text=_("Used in export names. Leave empty to make one from the title."),
    )
    instructions = forms.CharField(
        label=_("Instructions"),
        max_length=MAX_INSTRUCTIONS_CHARS,
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_(
            "Markdown: **bold**, lists, links. Annotators read this before their first task "
            "and can open it on every task."
        ),
    )
    kind = forms.ChoiceField(
        label=_("Task"),
        choices=[
            (Campaign.Kind.PAIRWISE, _("Pairwise: pick the better of two images")),
            (Campaign.Kind.RANKING, _("Ranking: put k images in order")),
        ],
        initial=Campaign.Kind.PAIRWISE,
        widget=forms.RadioSelect,
    )
    k = forms.IntegerField(
        label=_("Images per ranking task (k)"),
        min_value=3,
        max_value=9,
        initial=4,
        required=False,
        help_text=_("3 to 9; used for ranking only (pairwise always shows 2)."),
    )
    overlap = forms.IntegerField(
        label=_("Judgments per comparison"),
        min_value=1,
        max_value=100,
        initial=_model_default("overlap"),
        help_text=_(
            "Each comparison is judged by this many different annotators (default 3). More "
            "gives steadier labels and agreement figures, at that many times the work."
        ),
    )
    dynamic_overlap = forms.BooleanField(
        label=_("Dynamic overlap"),
        required=False,
        help_text=_(
            "Instead of a fixed number, each comparison first gets the minimum below and stops "
            "as soon as its annotators agree with the set confidence; where they disagree it "
            "gets more, up to the maximum. Saves judgments on clear comparisons and spends "
            "them on contested ones. Off by default."
        ),
    )
    min_raters = forms.IntegerField(
        label=_("Dynamic overlap: at least"),
        min_value=1,
        max_value=100,
        initial=_model_default("min_raters"),
        required=False,
        help_text=_("Judgments every comparison gets (default 2)."),
    )
    max_raters = forms.IntegerField(
        label=_("Dynamic overlap: at most"),
        min_value=1,
        max_value=100,
        initial=_model_default("max_raters"),
        required=False,
        help_text=_("Judgments a contested comparison gets at most (default 5)."),
    )
    confidence_percent = forms.FloatField(
        label=_("Dynamic overlap: confidence (%)"),
        min_value=50,
        max_value=100,
        initial=_percent(_model_default("confidence")),
        required=False,
        help_text=_(
            "A comparison is settled when the side its annotators favour is this likely to be "
            "the better one, weighing each annotator by their gold record (default 95%; above "
            "50 and below 100). Higher asks for more judgments."
        ),
    )
    lease_minutes = forms.IntegerField(
        label=_("Minutes to answer a task"),
        min_value=1,
        max_value=1440,
        initial=_model_default("lease_seconds") // 60,
        help_text=_(
            "A task stays reserved for the annotator who opened it this long (default 10), "
            "then goes back to the pool."
        ),
    )
    qualification_size = forms.IntegerField(
        label=_("Qualification items"),
        min_value=0,
        max_value=1000,
        initial=_model_default("qualification_size"),
        help_text=_(
            "New annotators first answer items with a known answer (gold). Enough right "
            "answers (8 in a row with the default policy) let them in; too many wrong ones "
            "block them. This is the length shown on their progress bar (default 15); 0 turns "
            "qualification off."
        ),
    )
    gold_percent = forms.FloatField(
        label=_("Gold checks after qualifying (% of tasks)"),
        min_value=0,
        max_value=20,
        initial=_percent(_model_default("gold_rate")),
        help_text=_(
            "Known-answer items mixed into the work to keep checking attention (default 2%, at "
            "most 20%). Gold is made with the images: 2% of the comparisons, at least 15, "
            "never more than a quarter of them."
        ),
    )
    repeat_percent = forms.FloatField(
        label=_("Repeats (% of tasks)"),
        min_value=0,
        max_value=20,
        initial=_percent(_model_default("repeat_rate")),
        help_text=_(
            "An earlier task shown again with the sides swapped, to measure self-consistency "
            "(default 5%). Repeats do not count towards the judgments per comparison."
        ),
    )
    active_sampling = forms.BooleanField(
        label=_("Active sampling of model pairs"),
        required=False,
        initial=_model_default("active_sampling"),
        help_text=_(
            "Pairwise campaigns comparing several models: serve first the model pairs whose "
            "order is least certain, so the leaderboard's intervals narrow with fewer "
            "judgments. Off by default: training data wants every prompt judged alike."
        ),
    )

    def __init__(self, *args, creating: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["slug"]

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict:
        return {
            "title": campaign.title,
            "instructions": campaign.instructions,
            "kind": campaign.kind,
            "k": campaign.k if campaign.kind == Campaign.Kind.RANKING else 4,
            "overlap": campaign.overlap,
            "dynamic_overlap": campaign.dynamic_overlap,
            "min_raters": campaign.min_raters,
            "max_raters": campaign.max_raters,
            "confidence_percent": _percent(campaign.confidence),
            "lease_minutes": max(1, round(campaign.lease_seconds / 60)),
            "qualification_size": campaign.qualification_size,
            "gold_percent": _percent(campaign.gold_rate),
            "repeat_percent": _percent(campaign.repeat_rate),
            "active_sampling": campaign.active_sampling,
        }

    def clean(self):
        data = super().clean()
        if data.get("kind") == Campaign.Kind.RANKING and not data.get("k"):
            self.add_error("k", RANKING_K)
        # Left empty (they only matter with dynamic overlap on): the model's defaults.
        for name in ("min_raters", "max_raters"):
            if data.get(name) is None and name not in self.errors:
                data[name] = _model_default(name)
        if data.get("confidence_percent") is None and "confidence_percent" not in self.errors:
            data["confidence_percent"] = _percent(_model_default("confidence"))
        low, high = data.get("min_raters"), data.get("max_raters")
        if low is not None and high is not None and low > high:
            self.add_error("max_raters", MAX_BELOW_MIN)
        confidence = data.get("confidence_percent")
        if confidence is not None and not 50 < confidence < 100:
            self.add_error("confidence_percent", CONFIDENCE_PERCENT)
        if data.get("kind") == Campaign.Kind.RANKING and data.get("active_sampling"):
            self.add_error("active_sampling", ACTIVE_SAMPLING_PAIRWISE_ONLY)
        return data

    def service_fields(self) -> dict:
        """The campaign fields for campaign_create / campaign_update."""
        data = self.cleaned_data
        ranking = data["kind"] == Campaign.Kind.RANKING
        return {
            "title": data["title"],
            "instructions": data["instructions"],
            "kind": data["kind"],
            "k": data["k"] if ranking else 2,
            "overlap": data["overlap"],
            "dynamic_overlap": data["dynamic_overlap"],
            "min_raters": data["min_raters"],
            "max_raters": data["max_raters"],
            "confidence": data["confidence_percent"] / 100,
            "lease_seconds": data["lease_minutes"] * 60,
            "qualification_size": data["qualification_size"],
            "gold_rate": data["gold_percent"] / 100,
            "repeat_rate": data["repeat_percent"] / 100,
            "active_sampling": data["active_sampling"],
        }


class CriterionForm(forms.Form):
    include = forms.BooleanField(label=_("Ask"), required=False)
    key = forms.CharField(
        label=_("Key"),
        max_length=32,
        required=False,
        validators=[
            RegexValidator(
                CRITERION_KEY,
                _("Lowercase letters, digits or _, starting with a letter, up to 32."),
            )
        ],
    )
    question = forms.CharField(label=_("Question"), max_length=300, required=False)
    allow_tie = forms.BooleanField(label=_("Tie allowed"), required=False)
    allow_both_bad = forms.BooleanField(label=_("“Both bad” allowed"), required=False)

    def clean(self):
        data = super().clean()
        if data.get("include") and not (data.get("key") and (data.get("question") or "").strip()):
            raise ValidationError(CRITERION_INCOMPLETE)
        return data


class BaseCriterionFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        if not self.criteria():
            raise ValidationError(NO_CRITERION)

    def criteria(self) -> list[dict]:
        return [
            {
                "key": form.cleaned_data["key"],
                "question": form.cleaned_data["question"].strip(),
                "allow_tie": form.cleaned_data["allow_tie"],
                "allow_both_bad": form.cleaned_data["allow_both_bad"],
            }
            for form in self.forms
            if form.cleaned_data.get("include")
        ]


CriterionFormSet = forms.formset_factory(
    CriterionForm,
    formset=BaseCriterionFormSet,
    extra=0,
    max_num=MAX_CRITERION_ROWS,
    absolute_max=MAX_CRITERION_ROWS,
    validate_max=True,
)


def criterion_rows(criteria: list[dict] | None = None) -> list[dict]:
    """Initial rows: the campaign's criteria (picked), the other presets, blank custom rows."""
    chosen = criteria if criteria is not None else [PRESET_CRITERIA[0]]
    rows = [{**c, "include": True, "preset": False} for c in chosen]
    keys = {c["key"] for c in chosen}
    rows += [{**p, "include": False} for p in PRESET_CRITERIA if p["key"] not in keys]
    for row in rows:
        row["preset"] = row["key"] in {p["key"] for p in PRESET_CRITERIA}
    rows += [{"include": False, "preset": False} for _ in range(CUSTOM_ROWS)]
    return rows[:MAX_CRITERION_ROWS]
