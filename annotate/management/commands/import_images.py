"""Import images into a campaign from a zip, a folder or a Pick-a-Pic parquet file.

manage.py import_images --campaign SLUG PATH [--with-labels] [--no-build] [--check]

A zip or folder holds manifest.csv with the columns prompt, file (a path relative to the
manifest), model_name and optionally seed. A parquet file has Pick-a-Pic's columns;
--with-labels turns its labels into judgments by imported raters. Everything is checked
before anything is written; bad rows are listed with their line or row index.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.management.commands.import_prompts import campaign_by_slug, error_report
from annotate.services.image_imports import images_import_apply, images_import_check
from annotate.services.image_imports.plan import Step
from pickwise.errors import ApplicationError


class Command(BaseCommand):
    help = "Import images (zip or folder with manifest.csv, or Pick-a-Pic parquet)."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="campaign slug")
        parser.add_argument("path", type=Path, help="a .zip, a folder or a .parquet file")
        parser.add_argument(
            "--with-labels",
            action="store_true",
            help="import a parquet file's labels as judgments by imported raters",
        )
        parser.add_argument(
            "--no-build",
            action="store_true",
            help="do not build comparisons for the imported prompts",
        )
        parser.add_argument("--check", action="store_true", help="check everything, write nothing")

    def handle(self, *args, campaign: str, path: Path, **options):
        target = campaign_by_slug(campaign)
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            if path.is_dir():
                self._run(target, path, **options)
            else:
                with path.open("rb") as source:
                    self._run(target, source, **options)
        except ApplicationError as error:
            raise CommandError(error_report(error)) from None

    def _run(self, campaign, source, *, with_labels: bool, no_build: bool, check: bool, **_):
        def progress(step: Step) -> None:
            self.stdout.write(str(step))

        self.stdout.write("Checking every row and image...")
        plan = images_import_check(
            campaign=campaign, source=source, with_labels=with_labels, progress=progress
        )
        summary = f"{len(plan.prompts)} prompts, {len(plan.items)} images"
        if with_labels:
            summary += f", {len(plan.labels)} judgments"
        if check:
            self.stdout.write(self.style.SUCCESS(f"All good: {summary}. Nothing was written."))
            return
        self.stdout.write(f"Writing {summary}...")
        result = images_import_apply(plan=plan, build=not no_build, progress=progress)
        counts = ", ".join(f"{name} {value}" for name, value in result.as_dict().items())
        self.stdout.write(self.style.SUCCESS(f"Imported into {campaign.slug}: {counts}."))
