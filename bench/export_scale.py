"""Export benchmark: Pick-a-Pic export rows/s and peak memory, without and with image bytes.

    python bench/export_scale.py --judgments 1000000 --also 100000 --with-images 20000

For each size, builds (once; reused on later runs) a pairwise campaign with that many
judgments by bulk SQL: 4 models per prompt, 6 pairs per prompt, overlap 3, 80% preferences,
10% ties, 10% both_bad, a few warned and blocked raters. Then runs the export in a fresh
subprocess per size and repetition, so peak RSS (ru_maxrss) belongs to that export alone:
the `--no-images` export (jpg_* empty) for the data path, and a smaller campaign with real
images on disk for the JPEG path. Prints a table and a summary line; memory is flat when the
peak barely moves from the smaller to the larger size.

The database is DATABASE_URL (default: SQLite in var/bench/export_scale.sqlite3). For
PostgreSQL use your own database name, e.g.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pickwise_exports_bench
"""

import argparse
import io
import json
import math
import os
import platform
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = f"sqlite:///{ROOT / 'var' / 'bench' / 'export_scale.sqlite3'}"
MODELS_PER_PROMPT = 4
OVERLAP = 3
CHUNK = 5000


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_hex(16))
    os.environ.setdefault("MEDIA_ROOT", str(ROOT / "var" / "bench" / "media"))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ["DATABASE_URL"].startswith("sqlite:"):
        Path(os.environ["DATABASE_URL"].split("sqlite:///", 1)[1]).parent.mkdir(
            parents=True, exist_ok=True
        )
    if os.environ["DATABASE_URL"].startswith("postgres"):
        _create_pg_database(os.environ["DATABASE_URL"])
    import django

    django.setup()


def _create_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


# ---------------------------------------------------------------------------------------
# Data: bulk SQL through Django's cursor (portable between SQLite and PostgreSQL).


def _insert(model, columns: list[str], rows) -> None:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 (names from _meta)
    with connection.cursor() as cursor:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def _next_id(model) -> int:
    from django.db.models import Max

    return (model.objects.aggregate(m=Max("id"))["m"] or 0) + 1


def png_bytes(rng: random.Random, size: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        box = (
            sorted(rng.randrange(size) for _ in range(2)),
            sorted(rng.randrange(size) for _ in range(2)),
        )
        draw.rectangle(
            (box[0][0], box[1][0], box[0][1], box[1][1]),
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_campaign(*, slug: str, judgments: int, images: bool, image_size: int) -> None:
    """A pairwise campaign with `judgments` judgments; reused when it exists already."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.utils import timezone

    from annotate.models import (
        Assignment,
        Campaign,
        Comparison,
        ComparisonImage,
        Image,
        Judgment,
        Membership,
        Prompt,
    )

    call_command("migrate", verbosity=0)
    existing = Campaign.objects.filter(slug=slug).first()
    if existing is not None:
        if Judgment.objects.filter(campaign=existing).count() == judgments:
            _analyze()
            return
        raise SystemExit(f"campaign {slug} exists with another size; use a fresh database")

    started = time.monotonic()
    rng = random.Random(judgments)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    User = get_user_model()
    raters = max(20, judgments // 5000)
    prompts = math.ceil(judgments / (OVERLAP * MODELS_PER_PROMPT * (MODELS_PER_PROMPT - 1) // 2))
    with transaction.atomic():
        campaign = Campaign.objects.create(
            slug=slug, title=f"Export benchmark {judgments}", status="active", overlap=OVERLAP
        )
        user0 = _next_id(User)
        _insert(
            User,
            [
                "id",
                "password",
                "is_superuser",
                "username",
                "first_name",
                "last_name",
                "email",
                "is_staff",
                "is_active",
                "date_joined",
            ],
            (
                (user0 + i, "!", False, f"{slug}-rater-{i}", "", "", "", False, True, now)
                for i in range(raters)
            ),
        )
        states = ["active"] * raters
        for i in range(0, raters, 20):
            states[i] = "warned"
        states[1] = "blocked"
        _insert(
            Membership,
            [
                "user_id",
                "campaign_id",
                "role",
                "gate_state",
                "gate_reason",
                "rater_key",
                "issued",
                "created_at",
            ],
            (
                (user0 + i, campaign.pk, "annotator", states[i], "", secrets.randbits(53), 0, now)
                for i in range(raters)
            ),
        )
        prompt0 = _next_id(Prompt)
        _insert(
            Prompt,
            ["id", "campaign_id", "text", "negative_prompt", "meta", "created_at"],
            (
                (
                    prompt0 + p,
                    campaign.pk,
                    f"{slug}: a photo of subject {p}, in style {p % 97}",
                    "",
                    "{}",
                    now,
                )
                for p in range(prompts)
            ),
        )
        image0 = _next_id(Image)
        uid_field = Image._meta.get_field("uid")
        shared_files = []
        if images:
            # A few hundred distinct pictures, stored once each, shared between prompts.
            for n in range(min(prompts * MODELS_PER_PROMPT, 400)):
                data = png_bytes(rng, image_size)
                name = f"images/bench/{slug}-{n}.png"
                if not default_storage.exists(name):
                    default_storage.save(name, ContentFile(data))
                shared_files.append(name)
        _insert(
            Image,
            [
                "id",
                "uid",
                "prompt_id",
                "file",
                "sha256",
                "width",
                "height",
                "model_name",
                "params",
                "source",
                "created_at",
            ],
            (
                (
                    image0 + p * MODELS_PER_PROMPT + m,
                    uid_field.get_db_prep_value(
                        uuid.UUID(int=rng.getrandbits(128), version=4), connection
                    ),
                    prompt0 + p,
                    shared_files[(p * MODELS_PER_PROMPT + m) % len(shared_files)]
                    if shared_files
                    else f"images/bench/none-{p}-{m}.png",
                    f"{p:032x}{m:032x}",
                    image_size,
                    image_size,
                    f"model-{m}",
                    "{}",
                    "imported",
                    now,
                )
                for p in range(prompts)
                for m in range(MODELS_PER_PROMPT)
            ),
        )
        uid_of = dict(Image.objects.filter(prompt__campaign=campaign).values_list("id", "uid"))
        comparison0 = _next_id(Comparison)
        pairs = [(a, b) for a in range(MODELS_PER_PROMPT) for b in range(a + 1, MODELS_PER_PROMPT)]
        comparisons = []  # (comparison id, prompt id, image ids)
        for p in range(prompts):
            for a, b in pairs:
                ids = (image0 + p * MODELS_PER_PROMPT + a, image0 + p * MODELS_PER_PROMPT + b)
                comparisons.append((comparison0 + len(comparisons), prompt0 + p, ids))
        needed = math.ceil(judgments / OVERLAP)
        comparisons = comparisons[:needed]
        _insert(
            Comparison,
            [
                "id",
                "campaign_id",
                "prompt_id",
                "key",
                "role",
                "gold_kind",
                "wanted",
                "done",
                "in_flight",
                "status",
                "created_at",
            ],
            (
                (
                    cid,
                    campaign.pk,
                    pid,
                    f"{ids[0]}-{ids[1]}",
                    "regular",
                    "",
                    OVERLAP,
                    OVERLAP,
                    0,
                    "full",
                    now,
                )
                for cid, pid, ids in comparisons
            ),
        )
        _insert(
            ComparisonImage,
            ["comparison_id", "image_id", "slot"],
            ((cid, ids[slot], slot) for cid, _, ids in comparisons for slot in (0, 1)),
        )
        assignment0 = _next_id(Assignment)
        judgment0 = _next_id(Judgment)
        rows = []
        for n in range(judgments):
            cid, _, ids = comparisons[n // OVERLAP]
            rater = (n // OVERLAP + (n % OVERLAP) * 7) % raters
            uids = [str(uid_of[i]) for i in ids]
            if rng.random() < 0.5:
                uids.reverse()
            draw = rng.random()
            answer = rng.choice(uids) if draw < 0.8 else ("tie" if draw < 0.9 else "both_bad")
            rows.append((n, cid, user0 + rater, uids, answer, states[rater] == "blocked"))

        _insert(
            Assignment,
            [
                "id",
                "campaign_id",
                "comparison_id",
                "annotator_id",
                "presented",
                "issued_at",
                "expires_at",
                "state",
                "is_gold",
                "is_repeat",
                "sequence",
                "closed_at",
            ],
            (
                (
                    assignment0 + n,
                    campaign.pk,
                    cid,
                    uid,
                    json.dumps(uids),
                    now,
                    now,
                    "submitted",
                    False,
                    False,
                    n,
                    now,
                )
                for n, cid, uid, uids, _, _ in rows
            ),
        )
        _insert(
            Judgment,
            [
                "id",
                "assignment_id",
                "campaign_id",
                "comparison_id",
                "annotator_id",
                "answers",
                "presented",
                "duration_ms",
                "server_ms",
                "is_gold",
                "is_repeat",
                "excluded",
                "never_shown",
                "created_at",
            ],
            (
                (
                    judgment0 + n,
                    assignment0 + n,
                    campaign.pk,
                    cid,
                    uid,
                    json.dumps({"overall": answer}),
                    json.dumps(uids),
                    2000,
                    2100,
                    False,
                    False,
                    blocked,
                    False,
                    now,
                )
                for n, cid, uid, uids, answer, blocked in rows
            ),
        )
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(
                no_style(), [User, Prompt, Image, Comparison, Assignment, Judgment]
            ):
                cursor.execute(sql)
    _analyze()
    print(
        f"  built {slug}: {judgments} judgments in {time.monotonic() - started:.0f} s", flush=True
    )


def _analyze() -> None:
    """Fresh planner statistics, as autovacuum would have them on a live database: after a
    bulk load, stale statistics make PostgreSQL pick scans that no live system would."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# ---------------------------------------------------------------------------------------
# One export per subprocess.


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(slug: str, images: bool) -> None:
    setup_django()
    from annotate.models import Campaign
    from exports.services import export_build, export_create

    campaign = Campaign.objects.get(slug=slug)
    before = _rss_mb()
    with tempfile.TemporaryDirectory(prefix="export-bench-") as folder:
        marks = {}

        def progress(done, total):
            if done * 2 >= total and "counted" not in marks:
                marks["counted"] = time.perf_counter()
                marks["counted_cpu"] = time.process_time()
            if done >= total and "written" not in marks:
                marks["written"] = time.perf_counter()
                marks["written_cpu"] = time.process_time()

        started = time.perf_counter()
        cpu_started = time.process_time()
        export = export_create(
            requested_by=None,
            campaign=campaign,
            format="pickapic",
            include_images=images,
            enqueue=False,
        )
        export = export_build(export=export, folder=Path(folder) / "out", progress=progress)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        assert export.status == "finished", export.error
        counts = export.manifest["counts"]
        rows = counts["rows"]
        size = sum(f["size"] for f in export.manifest["files"])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "counting_seconds": marks.get("counted", started) - started,
                "counting_cpu_seconds": marks.get("counted_cpu", cpu_started) - cpu_started,
                "writing_cpu_seconds": marks.get("written_cpu", cpu_started)
                - marks.get("counted_cpu", cpu_started),
                "judgments": counts["judgments_considered"],
                "rows_default": sum(rows["default"][s] for s in ("train", "validation", "test")),
                "rows_all": sum(sum(split.values()) for split in rows.values()),
                "images_encoded": export.manifest["images_encoded"],
                "bytes": size,
                "rss_before_mb": before,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(slug: str, images: bool) -> dict:
    command = [sys.executable, __file__, "--child", slug]
    if not images:
        command.append("--no-images")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument(
        "--also",
        type=int,
        nargs="*",
        default=[100_000],
        help="Smaller sizes to show memory is flat in rows.",
    )
    parser.add_argument(
        "--with-images",
        type=int,
        default=20_000,
        help="Judgments in the campaign exported with real image bytes (0: skip).",
    )
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-only", action="store_true", help="Build the data and stop.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-images", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, images=not args.no_images)
        return

    setup_django()
    import django
    import pyarrow
    from django.db import connection

    print("export benchmark (Pick-a-Pic format)")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"  python {platform.python_version()}, django {django.get_version()}, "
        f"pyarrow {pyarrow.__version__}, database {connection.vendor}"
    )
    runs = []
    for size in sorted({*args.also, args.judgments}):
        slug = f"bench-export-{size}"
        build_campaign(slug=slug, judgments=size, images=False, image_size=args.image_size)
        runs.append((f"{size} judgments, no image bytes", slug, False))
    if args.with_images:
        slug = f"bench-export-images-{args.with_images}-{args.image_size}px"
        build_campaign(
            slug=slug, judgments=args.with_images, images=True, image_size=args.image_size
        )
        runs.append((f"{args.with_images} judgments, {args.image_size}px JPEG", slug, True))

    if args.build_only:
        return
    print()
    print(f"  load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = (
        f"{'run':38} {'judgments':>9} {'rows':>8} {'wall s':>7} {'rows/s':>7} {'CPU s':>6} "
        f"{'rows/CPU s':>10} {'count CPU':>9} {'write CPU':>9} {'RSS before':>10} {'peak RSS':>8}"
    )
    print(header)
    print("-" * len(header))
    results = {}
    for label, slug, images in runs:
        measured = [run_child(slug, images) for _ in range(args.repeats)]

        def median(key, measured=measured):
            return statistics.median(m[key] for m in measured)

        first = measured[0]
        rate = first["rows_default"] / median("seconds")
        cpu_rate = first["rows_default"] / median("cpu_seconds")
        results[label] = {
            "rate": rate,
            "cpu_rate": cpu_rate,
            "peak": median("peak_rss_mb"),
            "images": images,
        }
        print(
            f"{label:38} {first['judgments']:>9} {first['rows_default']:>8} "
            f"{median('seconds'):>7.1f} {rate:>7.0f} {median('cpu_seconds'):>6.1f} "
            f"{cpu_rate:>10.0f} {median('counting_cpu_seconds'):>9.1f} "
            f"{median('writing_cpu_seconds'):>9.1f} {median('rss_before_mb'):>8.0f}MB "
            f"{median('peak_rss_mb'):>6.0f}MB"
        )
    print(f"  load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    peaks = [r["peak"] for r in results.values() if not r["images"]]
    largest = results[f"{args.judgments} judgments, no image bytes"]
    print(
        f"summary: {largest['rate']:.0f} rows/s wall, {largest['cpu_rate']:.0f} rows per CPU "
        f"second without image bytes at {args.judgments} judgments (target >= 50000); peak "
        f"RSS {min(peaks):.0f}-{max(peaks):.0f} MB across {len(peaks)} sizes "
        f"(median of {args.repeats} runs, {connection.vendor})"
    )


if __name__ == "__main__":
    main()
