"""The evaluation loop: base vs tuned on the export's held-out prompts, and the win-rate."""

import math
from pathlib import Path

import pytest

from annotate.models import Comparison, Image
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from generation.models import GenerationJob
from generation.services.batches import generation_batch_run
from generation.services.jobs import generation_batches
from pickwise.errors import ApplicationError
from tests.exports.helpers import build
from tests.factories import GeneratorFactory, annotator, campaign_with_comparisons, user_as
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.export_files import held_out_captions
from training.models import TrainingJob
from training.runner import latest_checkpoint_step, training_job_run
from training.selectors import training_job_evaluation, training_job_metric_series, win_rate
from training.services.evaluation import (
    ERROR_BAD_DESIGN,
    ERROR_NO_HELD_OUT,
    ERROR_NO_WEIGHTS,
    evaluation_campaign_create,
)
from training.services.jobs import training_job_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


def wilson(p: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    # Written out from the formula, independently of the code under test.
    a = p + z**2 / (2 * n)
    b = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (a - b) / (1 + z**2 / n), (a + b) / (1 + z**2 / n)


def test_the_win_rate_counts_ties_half_with_a_wilson_interval():
    # float64 formulas evaluated in another order differ by about 1e-16; approx's default
    # (rel 1e-6) is far above that and far below the fourth decimal checked next.
    result = win_rate(wins=6, ties=2, losses=2)
    assert result["win_rate"] == pytest.approx(0.7)
    low, high = wilson(0.7, 10)
    assert (result["low"], result["high"]) == (pytest.approx(low), pytest.approx(high))
    assert (round(result["low"], 4), round(result["high"], 4)) == (0.3968, 0.8922)
    assert result["interval"] == "wilson" and result["judgments"] == 10
    assert win_rate(wins=0, ties=0, losses=0)["win_rate"] is None


def test_the_job_reports_the_win_rate_over_base_from_hand_made_judgments(tmp_path):
    base, tuned = GeneratorFactory(name="job-base"), GeneratorFactory(name="job-tuned")
    campaign = campaign_with_comparisons(prompts=10, models=("job-base", "job-tuned"), overlap=1)
    export = finished_export(prompts=4)
    job = TrainingJob.objects.create(
        export=export,
        pretrained=str(tmp_path),
        status=TrainingJob.Status.DONE,
        max_steps=4,
        step=4,
        evaluation_campaign=campaign,
        base_generator=base,
        tuned_generator=tuned,
    )
    # Ten comparisons: tuned wins six, two ties, base wins two.
    plan = ["tuned"] * 6 + ["tie"] * 2 + ["base"] * 2
    rater = annotator(campaign)
    for outcome in plan:
        assignment = assignment_next(campaign=campaign, annotator=rater)
        models = {Image.objects.get(uid=uid).model_name: uid for uid in assignment.presented}
        answer = "tie" if outcome == "tie" else models[f"job-{outcome}"]
        judgment_submit(assignment=assignment, answers={"overall": answer})
    assert assignment_next(campaign=campaign, annotator=rater) is None

    result = training_job_evaluation(job=job)
    assert (result["wins"], result["ties"], result["losses"]) == (6, 2, 2)
    assert result["win_rate"] == pytest.approx(0.7)
    assert (result["low"], result["high"]) == tuple(pytest.approx(v) for v in wilson(0.7, 10))
    assert (result["base_model"], result["tuned_model"]) == ("job-base", "job-tuned")


@pytest.mark.slow
def test_a_finished_job_evaluates_on_held_out_prompts_base_and_tuned_at_the_same_seed(
    api_client, tiny_model_dir, django_capture_on_commit_callbacks
):
    export = finished_export(prompts=8)
    held_out = held_out_captions(folder=export.folder)
    assert len(held_out) == 2
    # A large learning rate so the tuned images differ visibly from the base ones.
    job = training_job_create(
        export=export,
        pretrained=str(tiny_model_dir),
        options={**TINY_OPTIONS, "learning_rate": 0.05},
    )
    assert training_job_run(job_id=job.pk, worker="here") == "done"
    job.refresh_from_db()
    assert (job.step, job.attempts, job.error) == (4, 1, "")
    output = Path(job.output_dir)
    assert latest_checkpoint_step(output) == 4
    assert (output / "pytorch_lora_weights.safetensors").is_file()
    assert training_job_metric_series(job=job)["step"] == [1, 2, 3, 4]
    # A second message for the finished job does nothing.
    assert training_job_run(job_id=job.pk, worker="here") == "not_claimed"

    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client.post(
            f"/api/training-jobs/{job.pk}/evaluate/", {"steps": 2}, format="json"
        )
    assert response.status_code == 201, response.json()
    again = api_client.post(f"/api/training-jobs/{job.pk}/evaluate/", {}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "already_evaluated")

    job.refresh_from_db()
    campaign = job.evaluation_campaign
    assert sorted(campaign.prompts.values_list("text", flat=True)) == sorted(held_out)
    assert job.tuned_generator.lora_path == job.output_dir
    assert job.base_generator.source == job.tuned_generator.source == job.pretrained
    generation = GenerationJob.objects.get(campaign=campaign)
    for generator_id, item_ids in generation_batches(job=generation):
        generation_batch_run(job_id=generation.pk, generator_id=generator_id, item_ids=item_ids)

    for prompt in campaign.prompts.all():
        images = {image.generator_id: image for image in prompt.images.all()}
        assert set(images) == {job.base_generator_id, job.tuned_generator_id}
        base, tuned = images[job.base_generator_id], images[job.tuned_generator_id]
        assert base.seed == tuned.seed and base.sha256 != tuned.sha256
        comparisons = Comparison.objects.filter(campaign=campaign, prompt=prompt)
        assert comparisons.count() == 1
        assert set(comparisons.get().images.values_list("pk", flat=True)) == {base.pk, tuned.pk}
    assert not Comparison.objects.filter(campaign=campaign, role="gold").exists()
    data = api_client.get(f"/api/training-jobs/{job.pk}/").json()
    assert data["evaluation"]["judgments"] == 0 and data["evaluation"]["win_rate"] is None


def done_job(*, export, pretrained, mode: str, output: Path) -> TrainingJob:
    """A finished job row over weights laid out as the trainer leaves them (not trained)."""
    job = TrainingJob.objects.create(
        export=export,
        pretrained=str(pretrained),
        mode=mode,
        options={"resolution": 32},
        status=TrainingJob.Status.DONE,
        output_dir=str(output),
    )
    output.mkdir(parents=True)
    if mode == "lora":
        (output / "pytorch_lora_weights.safetensors").write_bytes(b"")
    else:
        (output / "unet").mkdir()
        (output / "unet" / "config.json").write_text("{}")
    return job


def test_a_full_fine_tune_is_drawn_from_the_base_pipeline_with_its_own_unet(
    tiny_model_dir, tmp_path
):
    export = finished_export(prompts=4)
    job = done_job(export=export, pretrained=tiny_model_dir, mode="full", output=tmp_path / "o")
    campaign = evaluation_campaign_create(job=job, by=None, steps=2)
    job.refresh_from_db()
    folder = Path(job.tuned_generator.source)
    assert folder == tmp_path / "o" / "pipeline" and not job.tuned_generator.lora_path
    assert (folder / "unet").resolve() == (tmp_path / "o" / "unet").resolve()
    assert (folder / "vae").resolve() == (tiny_model_dir / "vae").resolve()
    assert (folder / "model_index.json").is_file()
    assert campaign.prompts.count() == len(held_out_captions(folder=export.folder)) == 1
    generation = GenerationJob.objects.get(campaign=campaign)
    assert set(generation.generators.all()) == {job.base_generator, job.tuned_generator}
    items = list(generation.items.values_list("prompt_id", "generator_id", "seed"))
    assert len(items) == 2 and items[0][2] == items[1][2]  # one seed, both generators


def test_a_job_evaluated_again_after_its_campaign_went_reuses_its_generators(
    tiny_model_dir, tmp_path
):
    export = finished_export(prompts=4)
    job = done_job(export=export, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "o")
    first = evaluation_campaign_create(job=job, by=None)
    job.refresh_from_db()
    generators = (job.base_generator_id, job.tuned_generator_id)
    TrainingJob.objects.filter(pk=job.pk).update(evaluation_campaign=None)
    second = evaluation_campaign_create(job=job, by=None)
    job.refresh_from_db()
    assert second.pk != first.pk and second.slug == f"eval-training-job-{job.pk}-2"
    assert (job.base_generator_id, job.tuned_generator_id) == generators
    assert job.evaluation_campaign == second


def test_evaluation_needs_held_out_prompts_and_the_tuned_weights(tiny_model_dir, tmp_path):
    export = finished_export(prompts=4)
    job = done_job(export=export, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "o")
    (tmp_path / "o" / "pytorch_lora_weights.safetensors").unlink()
    with pytest.raises(ApplicationError) as error:
        evaluation_campaign_create(job=job, by=None)
    assert error.value.message == ERROR_NO_WEIGHTS.format(id=job.pk)

    no_test = build(export.campaign, splits={"validation": 0.0, "test": 0.0})
    job = done_job(export=no_test, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "p")
    with pytest.raises(ApplicationError) as error:
        evaluation_campaign_create(job=job, by=None)
    assert error.value.message == ERROR_NO_HELD_OUT.format(id=no_test.pk)
    assert not TrainingJob.objects.filter(evaluation_campaign__isnull=False).exists()


def test_the_campaign_takes_the_chosen_prompts_seeds_and_judges_with_overlap_capped(
    tiny_model_dir, tmp_path
):
    export = finished_export(prompts=16)  # a quarter held out: 4 prompts
    judges = [annotator(export.campaign) for _ in range(2)]
    job = done_job(export=export, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "o")
    campaign = evaluation_campaign_create(
        job=job, by=None, prompts=3, seeds_per_prompt=2, overlap=5, judges=judges
    )
    assert campaign.prompts.count() == 3
    assert campaign.overlap == 2  # one judgment per judge at most
    assert campaign.pairs_per_prompt == 2  # one pair per seed
    generation = GenerationJob.objects.get(campaign=campaign)
    assert (generation.seeds_per_prompt, generation.items.count()) == (2, 3 * 2 * 2)
    members = campaign.memberships.filter(role="annotator").values_list("user_id", flat=True)
    assert sorted(members) == sorted(j.pk for j in judges)


def test_by_default_the_source_campaigns_unblocked_annotators_judge(tiny_model_dir, tmp_path):
    export = finished_export(prompts=8)
    source = export.campaign
    blocked = annotator(source)
    source.memberships.filter(user=blocked).update(gate_state="blocked")
    expected = set(
        source.memberships.filter(role="annotator")
        .exclude(gate_state="blocked")
        .values_list("user_id", flat=True)
    )
    assert len(expected) == 2  # the two who judged the export
    job = done_job(export=export, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "o")
    campaign = evaluation_campaign_create(job=job, by=None, overlap=3)
    members = set(campaign.memberships.filter(role="annotator").values_list("user_id", flat=True))
    assert members == expected and campaign.overlap == 2


@pytest.mark.parametrize(
    "options", [{"prompts": 0}, {"seeds_per_prompt": 0}, {"seeds_per_prompt": 65}, {"overlap": 0}]
)
def test_impossible_sizes_are_refused_before_anything_is_made(tiny_model_dir, tmp_path, options):
    export = finished_export(prompts=4)
    job = done_job(export=export, pretrained=tiny_model_dir, mode="lora", output=tmp_path / "o")
    with pytest.raises(ApplicationError) as error:
        evaluation_campaign_create(job=job, by=None, **options)
    assert error.value.message == ERROR_BAD_DESIGN
    assert not GenerationJob.objects.exists()
