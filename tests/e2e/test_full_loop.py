"""The whole loop in a real browser, with only the app's pages: an admin builds a campaign
from nothing and a real Celery worker draws its images; annotators judge it; a researcher
exports it, downloads a file, fine-tunes the tiny model on it and makes an evaluation
campaign, which the worker draws and the annotators judge into a win-rate.

Every page is watched for Content-Security-Policy refusals and script errors, and each new
screen's screenshot goes to docs/screenshots/ for the README. The worker is a separate
`celery worker` on the generate and default queues (the generation tests' helper: same
broker and database rules); the fine-tune runs the real trainer here, as a train worker
would, on the tiny random pipeline.
"""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from annotate.models import Assignment, Campaign, Image, Membership
from exports.models import Export
from generation.demo import demo_prompts
from generation.models import GenerationJob
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.helpers import key_for, log_in, wait_for_task, wait_until_sent
from tests.e2e.test_csp import watch
from tests.factories import UserFactory
from tests.generation.test_worker import FINISH_SECONDS, Worker
from tests.training.jobs_support import TINY_OPTIONS
from training.models import TrainingJob
from training.runner import training_job_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PROMPTS = 6
# A generous bound for a busy 2-core machine; every wait ends as soon as its condition holds.
WORKER_MS = FINISH_SECONDS * 1000


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def roots(settings, tmp_path):
    from generation.tiny_model import write_tiny_pipeline

    models = tmp_path / "models"
    write_tiny_pipeline(models / "tiny-sd", seed=0)
    settings.PICKWISE_MODEL_ROOTS = [models]
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"
    return models


@pytest.fixture
def worker(tmp_path, roots):
    worker = Worker(tmp_path, queue="generate,default")
    worker.env |= {
        "PICKWISE_MODEL_ROOTS": str(roots),
        "TRAINING_ROOT": str(django_settings.TRAINING_ROOT),
        "EXPORT_ROOT": str(django_settings.EXPORT_ROOT),
        "IMPORT_ROOT": str(django_settings.IMPORT_ROOT),
    }
    worker.start()
    yield worker
    worker.stop()


def judge_everything(page, base: str, campaign: Campaign, prefer) -> int:
    """Answer every task the annotate page gives, choosing with `prefer(images)`."""
    page.goto(f"{base}/campaigns/{campaign.pk}/annotate/")
    answered, task_id = 0, None
    while True:
        page.wait_for_function(
            """() => !document.getElementById("state-done").hidden
                || (document.getElementById("task").dataset.ready === "1"
                    && !document.getElementById("task").hidden)"""
        )
        if page.is_visible("#state-done"):
            wait_until_sent(page)  # answers go out from a queue in the background
            return answered
        task_id = wait_for_task(page, after=task_id)
        assignment = Assignment.objects.get(pk=task_id)
        images = {str(i.uid): i for i in Image.objects.filter(uid__in=assignment.presented)}
        page.keyboard.press(key_for(prefer(images), assignment))
        answered += 1
        page.wait_for_function(
            "(previous) => String(document.getElementById('task').dataset.taskId) !== "
            "String(previous) || !document.getElementById('state-done').hidden",
            arg=task_id,
        )


def faithful_image(images: dict) -> str:
    return next(uid for uid, image in images.items() if image.model_name == "faithful")


def test_an_admin_researcher_and_annotators_run_the_whole_loop_in_the_app(
    live_server, new_page, worker, roots, tmp_path
):
    base = live_server.url
    UserFactory(username="boss", is_staff=True)
    for name in ("judy", "kim", "sci"):
        UserFactory(username=name)
    admin = new_page(height=900)
    seen = watch(admin, base)
    log_in(admin, base, "boss")

    # 1. New campaign: two judgments per comparison, no gold or qualification.
    admin.click("text=New campaign")
    admin.fill("#id_title", "Shapes, round one")
    admin.fill("#id_instructions", "Pick the image that **shows the prompt**.")
    admin.fill("#id_overlap", "2")
    admin.fill("#id_qualification_size", "0")
    admin.fill("#id_gold_percent", "0")
    admin.fill("#id_repeat_percent", "0")
    admin.click("text=Create campaign")
    admin.wait_for_selector("text=Campaign created as a draft")
    campaign = Campaign.objects.get()

    # 2. Prompts, pasted.
    admin.click("nav.tabs >> text=Prompts")
    admin.fill("#id_text", "\n".join(demo_prompts(PROMPTS)))
    admin.click("text=Add prompts")
    admin.wait_for_selector(f"text={PROMPTS} prompts added")

    # 3. Images: two drawn models on the real worker; the panel moves to done by itself.
    admin.click("nav.tabs >> text=Images")
    admin.check("input[name=sources][value='procedural:faithful']")
    admin.check("input[name=sources][value='procedural:careless']")
    admin.fill("#id_steps", "1")
    admin.fill("#id_width", "128")
    admin.fill("#id_height", "128")
    shot(admin, "images")
    admin.click("text=Start generation")
    admin.wait_for_selector("text=is queued")
    admin.wait_for_selector("#image-jobs[data-active=false]", timeout=WORKER_MS)
    assert "done" in admin.inner_text("[data-panel=generation]"), worker.tail()
    assert f"{2 * PROMPTS} of {2 * PROMPTS}" in admin.inner_text("[data-panel=generation]")
    shot(admin, "images_generated")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE
    assert campaign.comparisons.filter(role="regular").count() == PROMPTS

    # 4. Members: two annotators and a researcher.
    admin.click("nav.tabs >> text=Members")
    admin.fill("#id_people", "judy\nkim")
    admin.select_option("#id_role", "annotator")
    admin.click("button:has-text('Add')")
    admin.wait_for_selector("text=2 added")
    admin.fill("#id_people", "sci")
    admin.select_option("#id_role", "researcher")
    admin.click("button:has-text('Add')")
    admin.wait_for_selector("text=1 added")

    # 5. The annotators judge every comparison, preferring what the prompt asked for.
    for name in ("judy", "kim"):
        rater = new_page()
        rater_seen = watch(rater, base)
        log_in(rater, base, name)
        assert judge_everything(rater, base, campaign, faithful_image) == PROMPTS
        assert rater_seen == {"csp": [], "errors": [], "offsite": []}
    assert sum(c.done for c in campaign.comparisons.all()) == 2 * PROMPTS

    # 6. The researcher exports (the worker builds it), copies the load line, downloads.
    sci = new_page(height=900)
    sci_seen = watch(sci, base)
    log_in(sci, base, "sci")
    sci.goto(f"{base}/campaigns/{campaign.pk}/dashboard/")
    sci.click("text=Start an export, download its files")
    sci.check("input[name=format][value=pickapic]")
    sci.fill("#id_validation", "0")
    sci.fill("#id_test", "0.34")
    shot(sci, "exports")
    sci.click("text=Start export")
    sci.wait_for_selector("text=is queued")
    sci.wait_for_selector("#export-list[data-active=false]", timeout=WORKER_MS)
    export = Export.objects.get()
    assert export.status == Export.Status.FINISHED, export.error or worker.tail()
    line = f'load_dataset("{campaign.slug}-pickapic-v1")'
    assert sci.inner_text(f"#load-{export.pk}-1") == line
    sci.click(f"[data-copy=load-{export.pk}-1]")
    sci.wait_for_function("(line) => document.body.dataset.copied === line", arg=line)
    shot(sci, "export_files")
    card = next(entry for entry in export.manifest["files"] if entry["name"] == "README.md")
    with sci.expect_download() as download:
        sci.click("#export-list a:text-is('README.md')")
    saved = tmp_path / "README.md"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == card["sha256"]

    # 7. Fine-tune on the tiny model: the form queues the job; the trainer runs it here.
    sci.click("text=Fine-tune on this export")
    sci.select_option("#id_pretrained", str((roots / "tiny-sd").resolve()))
    sci.fill("#id_max_train_steps", "4")
    sci.fill("#id_train_batch_size", "2")
    sci.fill("#id_resolution", "32")
    shot(sci, "training_start")
    sci.click("button[type=submit]:has-text('Start')")
    sci.wait_for_selector("text=is queued")
    job = TrainingJob.objects.get()
    extras = {k: v for k, v in TINY_OPTIONS.items() if k not in job.options}
    TrainingJob.objects.filter(pk=job.pk).update(options={**job.options, **extras})
    assert training_job_run(job_id=job.pk, worker="train-here") == "done"
    # The page notices by itself and offers the evaluation form, with its interval width.
    sci.wait_for_selector("#training-status[data-status=done]", timeout=30_000)
    sci.wait_for_selector("#evaluation-form")
    assert sci.input_value("#id_judges") == "judy\nkim"
    sci.fill("#id_seeds_per_prompt", "1")
    sci.fill("#id_overlap", "2")
    sci.wait_for_selector("#evaluation-estimate .estimate")
    # Two judges, two judgments each: nothing capped once the overlap change is estimated.
    sci.wait_for_function(
        "() => { const text = document.querySelector('#evaluation-estimate').textContent;"
        " return text.includes('1 seeds') && !text.includes('capped'); }"
    )
    estimate = sci.inner_text("#evaluation-estimate")
    assert "comparisons" in estimate and "Expected width" in estimate
    shot(sci, "evaluation_form")

    # 8. The evaluation campaign: the worker draws base and tuned, the annotators judge.
    sci.click("text=Create evaluation campaign")
    sci.wait_for_selector("text=its images are being generated")
    job.refresh_from_db()
    evaluation = job.evaluation_campaign
    assert set(
        evaluation.memberships.filter(role=Membership.Role.ANNOTATOR).values_list(
            "user__username", flat=True
        )
    ) == {"judy", "kim"}
    worker.wait_for(
        lambda: (
            not GenerationJob.objects.filter(
                campaign=evaluation, status__in=GenerationJob.ACTIVE
            ).exists()
        ),
        FINISH_SECONDS,
        "draw the evaluation images",
    )
    assert GenerationJob.objects.get(campaign=evaluation).status == "done", worker.tail()
    tuned = job.tuned_generator.name
    for name in ("judy", "kim"):
        rater = new_page()
        log_in(rater, base, name)
        judged = judge_everything(
            rater,
            base,
            evaluation,
            lambda images: next(u for u, i in images.items() if i.model_name == tuned),
        )
        assert judged == evaluation.comparisons.count()
    sci.reload()
    sci.wait_for_selector("[data-figure=win-rate]")
    assert "Tuned model wins 1.000" in sci.inner_text("[data-figure=win-rate]")
    shot(sci, "evaluation_result")

    assert seen == {"csp": [], "errors": [], "offsite": []}
    assert sci_seen == {"csp": [], "errors": [], "offsite": []}
    assert Path(SCREENSHOTS / "images_generated.png").is_file()
