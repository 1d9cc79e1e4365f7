"""Generator specs: which diffusers pipeline, with which settings, makes a campaign's images."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Generator(models.Model):
    class DType(models.TextChoices):
        AUTO = "auto"
        FLOAT16 = "float16"
        BFLOAT16 = "bfloat16"
        FLOAT32 = "float32"

    # What exports call model_0 / model_1.
    name = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=500, help_text="A local diffusers folder or a hub id.")
    pipeline_class = models.CharField(
        max_length=100, blank=True, help_text="Blank: from model_index.json."
    )
    scheduler = models.CharField(max_length=100, blank=True, help_text="Blank: the pipeline's own.")
    steps = models.PositiveSmallIntegerField(
        default=25, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    guidance = models.FloatField(
        default=7.5, validators=[MinValueValidator(0.0), MaxValueValidator(50.0)]
    )
    width = models.PositiveIntegerField(default=512)
    height = models.PositiveIntegerField(default=512)
    dtype = models.CharField(max_length=16, choices=DType.choices, default=DType.AUTO)
    negative_prompt = models.TextField(blank=True)
    extra = models.JSONField(
        default=dict, blank=True, help_text="Extra pipeline keyword arguments."
    )
    lora_path = models.CharField(
        max_length=500, blank=True, help_text="Optional LoRA folder to load."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(width__gte=8, height__gte=8, width__lte=4096, height__lte=4096),
                name="generator_size_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name
