"""Start a training job on an export, or make the evaluation campaign of a finished one:

    python manage.py train_dpo --export ID --pretrained DIR [--method dpo|mapo] [--mode lora|full]
        [--max-steps N] [--option NAME=VALUE ...] [--sync]
    python manage.py train_dpo --evaluate JOB_ID [--steps 25] [--guidance 7.5]

Without --sync the job goes to the train queue; with it, the trainer runs here as the worker
would run it (a subprocess, progress in the database) and the command waits for the end.
"""

import json
import socket

from django.core.management.base import BaseCommand, CommandError

from exports.models import Export
from pickwise.errors import ApplicationError
from training.models import TrainingJob
from training.options import METHODS, MODES
from training.runner import training_job_run
from training.services.evaluation import evaluation_campaign_create
from training.services.jobs import training_job_create, training_job_start

UNKNOWN_EXPORT = "No export with id {id}."
UNKNOWN_JOB = "No training job with id {id}."
BAD_OPTION = "--option takes NAME=VALUE, not {text!r}."
NEEDS_EXPORT = "Give --export and --pretrained to train, or --evaluate JOB_ID."


def _option(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise CommandError(BAD_OPTION.format(text=text))
    try:
        value = json.loads(raw)  # numbers, true/false, null
    except json.JSONDecodeError:
        value = raw
    return name.strip().replace("-", "_"), value


class Command(BaseCommand):
    help = "Fine-tune a base model on an export with Diffusion-DPO or MaPO, or evaluate a job."

    def add_arguments(self, parser):
        parser.add_argument("--export", type=int, help="Id of a finished pickapic export.")
        parser.add_argument("--pretrained", help="Base diffusers pipeline folder.")
        parser.add_argument("--method", default="dpo", choices=METHODS)
        parser.add_argument("--mode", default="lora", choices=MODES)
        parser.add_argument("--max-steps", type=int, help="Optimizer steps (default 2000).")
        parser.add_argument(
            "--option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="Any trainer option, e.g. --option resolution=256 --option beta=2500.",
        )
        parser.add_argument("--name", default="")
        parser.add_argument("--sync", action="store_true", help="Run here and wait.")
        parser.add_argument("--evaluate", type=int, metavar="JOB_ID", help="Evaluate a job.")
        parser.add_argument("--steps", type=int, default=25, help="Evaluation sampling steps.")
        parser.add_argument("--guidance", type=float, default=7.5, help="Evaluation guidance.")

    def handle(self, *args, **options):
        try:
            if options["evaluate"] is not None:
                return self._evaluate(options)
            return self._train(options)
        except ApplicationError as error:
            raise CommandError(error.message) from None

    def _evaluate(self, options) -> None:
        job = TrainingJob.objects.filter(pk=options["evaluate"]).first()
        if job is None:
            raise CommandError(UNKNOWN_JOB.format(id=options["evaluate"]))
        campaign = evaluation_campaign_create(
            job=job, by=None, steps=options["steps"], guidance=options["guidance"]
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Evaluation campaign {campaign.slug} ({campaign.prompts.count()} held-out "
                "prompts); its images are being generated."
            )
        )

    def _train(self, options) -> None:
        if options["export"] is None or not options["pretrained"]:
            raise CommandError(NEEDS_EXPORT)
        trainer_options = dict(_option(text) for text in options["option"])
        export = Export.objects.filter(pk=options["export"]).first()
        if export is None:
            raise CommandError(UNKNOWN_EXPORT.format(id=options["export"]))
        if options["max_steps"] is not None:
            trainer_options["max_train_steps"] = options["max_steps"]
        fields = {
            "export": export,
            "pretrained": options["pretrained"],
            "method": options["method"],
            "mode": options["mode"],
            "options": trainer_options,
            "name": options["name"],
        }
        if not options["sync"]:
            job = training_job_start(**fields)
            self.stdout.write(f"Training job {job.pk} queued on the train queue.")
            return
        job = training_job_create(**fields)
        self.stdout.write(f"Training job {job.pk}: training in {job.output_dir}")
        status = training_job_run(job_id=job.pk, worker=f"manage.py@{socket.gethostname()}")
        job.refresh_from_db()
        if status != TrainingJob.Status.DONE:
            raise CommandError(f"Training job {job.pk} {job.status}: {job.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Training job {job.pk} done at step {job.step}; weights in {job.output_dir}"
            )
        )
