"""manage.py train_dpo: queue a job with trainer options, refuse bad input, evaluate."""

import pytest
from django.core.management import CommandError, call_command

from tests.training.jobs_support import finished_export
from training.models import TrainingJob

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


def test_it_queues_a_job_with_the_options_given(
    pipeline_layout_dir, capsys, django_capture_on_commit_callbacks
):
    export = finished_export(prompts=4)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        call_command(
            "train_dpo",
            "--export",
            str(export.pk),
            "--pretrained",
            str(pipeline_layout_dir),
            "--method",
            "mapo",
            "--max-steps",
            "3",
            "--option",
            "resolution=32",
            "--option",
            "random-flip=false",
        )
    job = TrainingJob.objects.get()
    assert (job.method, job.max_steps) == ("mapo", 3)
    assert job.options == {"resolution": 32, "random_flip": False, "max_train_steps": 3}
    assert f"Training job {job.pk} queued" in capsys.readouterr().out
    assert [(s.func.__self__.name, s.args) for s in sends] == [("training.run_job", (job.pk,))]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--export", "999999", "--pretrained", "/x"], "No export with id 999999."),
        (["--pretrained", "/x"], "Give --export and --pretrained to train"),
        (["--evaluate", "999999"], "No training job with id 999999."),
        (["--export", "1", "--pretrained", "/x", "--option", "beta"], "--option takes NAME=VALUE"),
    ],
)
def test_it_refuses_bad_arguments_with_the_reason(argv, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("train_dpo", *argv)


def test_it_reports_the_services_refusal(pipeline_layout_dir):
    export = finished_export(prompts=4, ties_only=True)
    with pytest.raises(CommandError, match=f"Export {export.pk} has no preference pairs"):
        call_command(
            "train_dpo", "--export", str(export.pk), "--pretrained", str(pipeline_layout_dir)
        )
    missing = str(pipeline_layout_dir.parent / "no-such-model")
    with pytest.raises(CommandError, match="pretrained is not a model folder this server offers"):
        call_command("train_dpo", "--export", str(export.pk), "--pretrained", missing)
    with pytest.raises(CommandError, match="pretrained is not a model folder this server offers"):
        call_command("train_dpo", "--export", str(export.pk), "--pretrained", "/no/such/dir")
