"""Add prompts to a campaign from a file.

manage.py import_prompts --campaign SLUG FILE [--format txt|csv|json|jsonl]

txt: one prompt a line. csv: a `text` column, optional `negative_prompt`, other columns go
to meta. json: a list of strings or {text, negative_prompt?, meta?}. jsonl: one a line.
Nothing is imported unless every row is good; bad rows are listed with their lines.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotate.models import Campaign
from annotate.services.prompts import FORMATS, prompt_rows_parse, prompts_add
from pickwise.errors import ApplicationError

FILE_TOO_LARGE = "{path} is {size} bytes; the limit is {limit}."


def error_report(error: ApplicationError) -> str:
    """The error and each bad row it lists, one a line, for the terminal."""
    lines = [error.message]
    for row in error.extra.get("errors", []):
        where = ", ".join(f"{k} {v}" for k, v in row.items() if k != "error")
        lines.append(f"  {where}: {row['error']}")
    return "\n".join(lines)


def campaign_by_slug(slug: str) -> Campaign:
    campaign = Campaign.objects.filter(slug=slug).first()
    if campaign is None:
        raise CommandError(f"No campaign with slug {slug!r}.")
    return campaign


class Command(BaseCommand):
    help = "Add prompts to a campaign from a txt, csv, json or jsonl file."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="campaign slug")
        parser.add_argument("file", type=Path, help="prompt file")
        parser.add_argument(
            "--format", choices=FORMATS, help="file format (default: from the file name)"
        )

    def handle(self, *args, campaign: str, file: Path, **options):
        target = campaign_by_slug(campaign)
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        size, limit = file.stat().st_size, settings.PICKWISE_MAX_UPLOAD_BYTES
        if size > limit:
            raise CommandError(FILE_TOO_LARGE.format(path=file, size=size, limit=limit))
        fmt = options.get("format") or file.suffix.lstrip(".").lower()
        try:
            rows = prompt_rows_parse(data=file.read_bytes(), fmt=fmt)
            self.stdout.write(f"Read {len(rows)} prompts from {file}.")
            result = prompts_add(campaign=target, rows=rows)
        except ApplicationError as error:
            raise CommandError(error_report(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.created} prompts added to {target.slug}, "
                f"{result.existing} were there already."
            )
        )
