"""Image import benchmark: seconds and queries to import a Pick-a-Pic parquet file.

    python bench/image_import_scale.py --images 5000 --repeats 3 [--with-labels]

Writes (once; reused) a parquet file of images/2 rows with distinct 64 px PNGs, then per
repeat imports it into a fresh campaign with fresh media through the service the worker and
the command share: images_import_check (reads and checks every image), then
images_import_apply (writes in one transaction). Prints the seconds of each phase and the
queries of the write, and a summary line with medians.

To compare with another version of the code, run this file with BENCH_CODE_ROOT set to that
checkout (e.g. a worktree at an older commit): its code and its var/ are used.
The database is DATABASE_URL (default: SQLite in var/bench/image_import_scale.sqlite3).
"""

import argparse
import io
import os
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_CODE_ROOT") or Path(__file__).resolve().parent.parent)
DEFAULT_DB = f"sqlite:///{ROOT / 'var' / 'bench' / 'image_import_scale.sqlite3'}"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_hex(16))
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ["DATABASE_URL"].startswith("sqlite:"):
        Path(os.environ["DATABASE_URL"].split("sqlite:///", 1)[1]).parent.mkdir(
            parents=True, exist_ok=True
        )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def png_bytes(rng: random.Random, size: int = 64) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, x1 = sorted(rng.randrange(size) for _ in range(2))
        y0, y1 = sorted(rng.randrange(size) for _ in range(2))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def parquet_file(images: int) -> Path:
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(tempfile.gettempdir()) / f"pickwise-bench-pickapic-{images}.parquet"
    if path.exists():
        return path
    rng = random.Random(7)
    rows = images // 2
    first = [random.Random(i).random() < 0.5 for i in range(rows)]
    table = pa.table(
        {
            "caption": [f"prompt {i % (rows // 2 or 1)} of the bench" for i in range(rows)],
            "jpg_0": [png_bytes(rng) for _ in range(rows)],
            "jpg_1": [png_bytes(rng) for _ in range(rows)],
            "model_0": ["model-a"] * rows,
            "model_1": ["model-b"] * rows,
            "image_0_uid": [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(rows)],
            "image_1_uid": [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(rows)],
            "label_0": [1.0 if f else 0.0 for f in first],
            "label_1": [0.0 if f else 1.0 for f in first],
            "best_image_uid": ["none"] * rows,
            "user_id": [i % 200 for i in range(rows)],
            "created_at": [datetime.datetime(2023, 5, 1, 12, 0)] * rows,
        }
    )
    pq.write_table(table, path, row_group_size=256)
    return path


class QueryCounter:
    """Counts every query (Django's own query log keeps only the last 9000)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def run_once(path: Path, with_labels: bool) -> dict:
    from django.db import connection
    from django.test.utils import override_settings

    from annotate.models import Campaign
    from annotate.services.image_imports import images_import_apply, images_import_check

    slug = f"bench-import-{secrets.token_hex(4)}"
    campaign = Campaign.objects.create(slug=slug, title=slug)
    with (
        tempfile.TemporaryDirectory() as media,
        override_settings(MEDIA_ROOT=media),
        path.open("rb") as source,
    ):
        start = time.perf_counter()
        with connection.execute_wrapper(check_queries := QueryCounter()):
            plan = images_import_check(campaign=campaign, source=source, with_labels=with_labels)
        checked = time.perf_counter()
        with connection.execute_wrapper(write_queries := QueryCounter()):
            result = images_import_apply(plan=plan)
        done = time.perf_counter()
    return {
        "check_s": checked - start,
        "write_s": done - checked,
        "total_s": done - start,
        "check_queries": check_queries.count,
        "write_queries": write_queries.count,
        "images": result.images_created,
        "judgments": result.judgments_created,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-labels", action="store_true")
    args = parser.parse_args()
    setup_django()
    import django
    from django.db import connection

    path = parquet_file(args.images)
    print(
        f"code: {ROOT}  python {platform.python_version()}  django {django.get_version()}  "
        f"database {connection.vendor}  cpus {os.cpu_count()}"
    )
    print(
        f"data: {args.images} images in {path.stat().st_size / 1e6:.1f} MB of parquet, "
        f"labels {'on' if args.with_labels else 'off'}"
    )
    runs = []
    print(
        f"{'run':>3} {'check s':>8} {'write s':>8} {'total s':>8} {'write queries':>14} "
        f"{'images':>7} {'judgments':>9}"
    )
    for index in range(args.repeats):
        run = run_once(path, args.with_labels)
        runs.append(run)
        print(
            f"{index + 1:>3} {run['check_s']:>8.2f} {run['write_s']:>8.2f} {run['total_s']:>8.2f} "
            f"{run['write_queries']:>14} {run['images']:>7} {run['judgments']:>9}"
        )
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"summary: {args.images} images{' with labels' if args.with_labels else ''}: "
        f"median {median['total_s']:.2f} s ({median['check_s']:.2f} check + "
        f"{median['write_s']:.2f} write), {median['write_queries']:.0f} write queries "
        f"({median['write_queries'] / args.images:.3f} per image)"
    )


if __name__ == "__main__":
    main()
