"""Build an export synchronously into a folder:

    python manage.py export_dataset --campaign SLUG --format pickapic --out DIR \
        [--criterion overall] [--seed 0] [--include-states active,warned] [--no-images]

`--campaign` given several times combines those campaigns into one dataset (pickapic or
image_preference; same kind and criterion), in the order given.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Campaign
from exports.models import Export
from exports.services import FORMAT_NAMES, export_build, export_create
from pickwise.errors import ApplicationError

UNKNOWN_CAMPAIGN = "No campaign with slug {slug!r}; see the campaign list for slugs."
UNKNOWN_FORMAT = "Unknown format {format!r}; choose one of: " + FORMAT_NAMES + "."
OUT_NOT_EMPTY = "--out {folder} exists and is not empty; choose a new folder."
OUT_UNWRITABLE = "--out {folder} cannot be created: {reason}. Choose a writable folder."
BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Export a campaign's judgments as a dataset folder (pickapic, ranked, image_preference or jsonl)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--campaign",
            required=True,
            action="append",
            help="Campaign slug; repeat it to combine several campaigns into one dataset.",
        )
        parser.add_argument(
            "--format", default="pickapic", help="pickapic, ranked, image_preference or jsonl."
        )
        parser.add_argument("--out", required=True, help="A new (or empty) folder.")
        parser.add_argument("--criterion", default=None, help="Criterion key (default overall).")
        parser.add_argument("--seed", type=int, default=0, help="Seed for splits and image order.")
        parser.add_argument(
            "--include-states",
            default="active,warned",
            help="Rater states to include, comma-separated (qualifying, active, warned).",
        )
        parser.add_argument(
            "--no-images", action="store_true", help="Leave image bytes empty (benchmarks)."
        )

    def handle(self, *args, **options):
        by_slug = Campaign.objects.in_bulk(options["campaign"], field_name="slug")
        for slug in options["campaign"]:
            if slug not in by_slug:
                raise CommandError(UNKNOWN_CAMPAIGN.format(slug=slug))
        campaign, *also = [by_slug[slug] for slug in options["campaign"]]
        if options["format"] not in Export.Format.values:
            raise CommandError(UNKNOWN_FORMAT.format(format=options["format"]))
        out = Path(options["out"]).expanduser().resolve()
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise CommandError(OUT_NOT_EMPTY.format(folder=out))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CommandError(
                OUT_UNWRITABLE.format(folder=out, reason=error.strerror or error)
            ) from None
        states = [s.strip() for s in options["include_states"].split(",") if s.strip()]
        try:
            export = export_create(
                requested_by=None,
                campaign=campaign,
                format=options["format"],
                criterion=options["criterion"],
                seed=options["seed"],
                policy={"states": states},
                include_images=not options["no_images"],
                enqueue=False,
                also=also,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        slugs = ", ".join(options["campaign"])
        self.stdout.write(f"Export {export.pk} (v{export.version}) of {slugs} into {out}")
        export = export_build(export=export, folder=out, progress=self._bar)
        self.stdout.write("")
        if export.status != Export.Status.FINISHED:
            raise CommandError(export.error)
        counts = export.manifest["counts"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {out}: {counts['judgments_included']} of "
                f"{counts['judgments_considered']} judgments, rows {counts['rows']}"
            )
        )

    def _bar(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // total if total else BAR_WIDTH
        percent = 100 * done // total if total else 100
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(f"\r[{bar}] {percent:3d}% {done}/{total}", ending="")
        self.stdout.flush()
