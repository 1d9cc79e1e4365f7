"""Demo images for seed_demo: the tiny offline pipeline, a few generators, a synchronous job.

The tiny model is random, so its images are coloured noise; they are real diffusers output
with real metadata, which is what the demo needs to show the whole loop without downloads.
"""

import importlib.util
import os
import shutil
import socket

from django.conf import settings
from django.db import transaction

from annotate.models import Campaign
from generation.models import Generator
from generation.services.jobs import generation_job_create
from generation.services.sync import generation_job_run_sync

DEMO_SIZE = 64
DEMO_STEPS = 4
# One look per generator, so the demo's models really differ (guidance, then scheduler).
DEMO_LOOKS = (
    {"guidance": 7.5, "scheduler": ""},
    {"guidance": 2.0, "scheduler": "EulerAncestralDiscreteScheduler"},
    {"guidance": 12.0, "scheduler": "DPMSolverMultistepScheduler"},
    {"guidance": 5.0, "scheduler": "EulerDiscreteScheduler"},
)


def gpu_stack_available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("torch", "diffusers", "transformers"))


def demo_pipeline_dir():
    """var/models/tiny-sd, written once (through a temporary folder, so never half-written)."""
    folder = settings.VAR_DIR / "models" / "tiny-sd"
    if not (folder / "model_index.json").exists():
        from generation.tiny_model import write_tiny_pipeline

        partial = folder.with_name(f"tiny-sd.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        write_tiny_pipeline(partial, seed=0)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return folder


@transaction.atomic
def _demo_generators(models: list[str], source: str) -> list[Generator]:
    generators = []
    for index, name in enumerate(models):
        look = DEMO_LOOKS[index % len(DEMO_LOOKS)]
        generator = Generator.objects.filter(name=name).first()
        if generator is None:
            generator = Generator(
                name=name,
                source=source,
                steps=DEMO_STEPS,
                width=DEMO_SIZE,
                height=DEMO_SIZE,
                dtype=Generator.DType.FLOAT32,
                **look,
            )
            generator.full_clean()
            generator.save()
        generators.append(generator)
    return generators


def demo_generate(*, campaign: Campaign, models: list[str], seeds_per_prompt: int) -> bool:
    """Render the campaign's images with the tiny model, one generator per name in `models`.

    Builds comparisons and gold as a real job does. Returns False (and does nothing) when
    torch or diffusers is not installed, so seed_demo can fall back to plain images.
    """
    if not gpu_stack_available():
        return False
    folder = demo_pipeline_dir()
    generators = _demo_generators(models, str(folder))
    job = generation_job_create(
        campaign=campaign, generators=generators, seeds_per_prompt=seeds_per_prompt
    )
    generation_job_run_sync(job=job, worker=f"demo-{os.getpid()}@{socket.gethostname()}")
    return True
