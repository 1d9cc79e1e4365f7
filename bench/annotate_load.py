"""Load benchmark of the annotation loop: gunicorn + PostgreSQL, annotators over HTTP.

    python bench/annotate_load.py --comparisons 10000 --judgments 100000 --seconds 30

Builds a campaign of N pairwise comparisons with M judgments of history (bulk SQL), starts
gunicorn on loopback, and runs three phases of simulated annotators doing next + submit:
one annotator without think time, saturation (many annotators without think time), and
many annotators thinking an exponentially distributed time between tasks. Prints latency
percentiles per call, judgments/s, and then checks the invariants: no comparison over its
overlap, no annotator judging a regular comparison twice, every acknowledged submit stored.

Needs PostgreSQL (--database-url, default postgres://postgres@127.0.0.1:5432/pickwise_bench;
the database is dropped and rebuilt) and Redis as the broker (CELERY_BROKER_URL, default
redis://127.0.0.1:6379/15), as in production.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/pickwise_bench"


# ---------------------------------------------------------------------------------------
# Data set-up: bulk SQL, so a million judgments take seconds, not hours.


def setup_django(database_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_hex(16))
    import django

    django.setup()


def recreate_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def build_data(*, comparisons: int, judgments: int, clients: int, overlap: int) -> dict:
    """Campaign, prompts, images, comparisons, history of judgments, client users + tokens."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    history_raters = max(10, judgments // 500)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '!', false, 'rater' || g, '', '', '', false, true, now()
            FROM generate_series(1, %s) g
            """,
            [history_raters + clients],
        )
        cur.execute(
            """
            INSERT INTO annotate_campaign (slug, title, instructions, kind, k, criteria, overlap,
                gold_rate, repeat_rate, qualification_size, lease_seconds, qc_policy, status,
                created_at)
            VALUES ('bench', 'Load benchmark', '', 'pairwise', 2,
                '[{"key": "overall", "question": "Which is better?", "allow_tie": true,
                   "allow_both_bad": true}]', %s, 0.02, 0.05, 0, 600, '{}', 'active', now())
            RETURNING id
            """,
            [overlap],
        )
        campaign_id = cur.fetchone()[0]
        cur.execute(
            """
            INSERT INTO annotate_membership (user_id, campaign_id, role, gate_state, gate_reason,
                gate_changed_at, rater_key, issued, created_at)
            SELECT u.id, %s, 'annotator', 'active', '', now(), u.id * 7919, 0, now()
            FROM auth_user u WHERE u.username LIKE 'rater%%'
            """,
            [campaign_id],
        )
        cur.execute(
            """
            INSERT INTO annotate_prompt (campaign_id, text, negative_prompt, meta, created_at)
            SELECT %s, 'prompt number ' || g, '', '{}', now() FROM generate_series(1, %s) g
            """,
            [campaign_id, comparisons],
        )
        # Two images per prompt; the file names are content-address shaped, never read here.
        cur.execute(
            """
            INSERT INTO annotate_image (uid, prompt_id, file, sha256, width, height, model_name,
                seed, params, source, created_at)
            SELECT gen_random_uuid(), p.id,
                   'images/00/00/' || md5(p.id::text || m) || '.png', md5(p.id::text || m),
                   512, 512, m, 0, '{}', 'imported', now()
            FROM annotate_prompt p CROSS JOIN (VALUES ('model-a'), ('model-b')) AS v(m)
            WHERE p.campaign_id = %s
            """,
            [campaign_id],
        )
        cur.execute(
            """
            INSERT INTO annotate_comparison (campaign_id, prompt_id, key, role, gold_kind, wanted,
                done, in_flight, status, created_at)
            SELECT %s, p.id, min(i.id) || '-' || max(i.id), 'regular', '', %s, 0, 0, 'open', now()
            FROM annotate_prompt p JOIN annotate_image i ON i.prompt_id = p.id
            WHERE p.campaign_id = %s GROUP BY p.id
            """,
            [campaign_id, overlap, campaign_id],
        )
        # Slots by a window, not a min(id) subquery per row: on fresh tables without
        # statistics PostgreSQL answered that subquery by walking the image primary key,
        # quadratic in the images (10k comparisons took seconds, 100k did not finish in 7 min).
        cur.execute(
            """
            INSERT INTO annotate_comparisonimage (comparison_id, image_id, slot)
            SELECT c.id, i.id, row_number() OVER (PARTITION BY c.id ORDER BY i.id) - 1
            FROM annotate_comparison c JOIN annotate_image i ON i.prompt_id = c.prompt_id
            WHERE c.campaign_id = %s
            """,
            [campaign_id],
        )
        # Statistics for the fresh tables: without them the planner joined every comparison's
        # images by scanning the whole image table, quadratic at 100k comparisons.
        cur.execute("ANALYZE annotate_image, annotate_comparison, annotate_comparisonimage")
        # History: judgment g goes to comparison c = g mod N by rater (g div N + c) mod R, so
        # raters share the work evenly, none meets a comparison twice (while M <= N * R), and
        # done stays two below overlap (room is left for the run).
        # Indexed temp tables keep the planner on hash joins; CTEs here made it crawl.
        cur.execute(
            """
            CREATE TEMP TABLE comps AS
            SELECT c.id, row_number() OVER (ORDER BY c.id) - 1 AS n,
                   (SELECT json_agg(i.uid::text ORDER BY ci.slot) FROM annotate_comparisonimage ci
                    JOIN annotate_image i ON i.id = ci.image_id
                    WHERE ci.comparison_id = c.id) AS presented
            FROM annotate_comparison c WHERE c.campaign_id = %s AND c.role = 'regular'
            """,
            [campaign_id],
        )
        cur.execute(
            """
            CREATE TEMP TABLE raters AS
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM auth_user
            WHERE username LIKE 'rater%%' ORDER BY id LIMIT %s
            """,
            [history_raters],
        )
        cur.execute("CREATE INDEX ON comps (n); CREATE INDEX ON raters (n); ANALYZE comps, raters")
        cur.execute(
            """
            INSERT INTO annotate_assignment (campaign_id, comparison_id, annotator_id, presented,
                issued_at, expires_at, state, is_gold, is_repeat, sequence, closed_at)
            SELECT %(c)s, comps.id, raters.id, comps.presented,
                   now() - interval '1 day', now() - interval '1 day' + interval '10 minutes',
                   'submitted', false, false, 0, now() - interval '1 day'
            FROM generate_series(0, %(m)s - 1) g
            JOIN comps ON comps.n = g %% %(n)s
            JOIN raters ON raters.n = (g / %(n)s + g %% %(n)s) %% %(r)s
            """,
            {"c": campaign_id, "n": comparisons, "r": history_raters, "m": judgments},
        )
        cur.execute(
            """
            UPDATE annotate_assignment a SET sequence = s.seq FROM (
                SELECT id, row_number() OVER (PARTITION BY annotator_id ORDER BY id) - 1 AS seq
                FROM annotate_assignment WHERE campaign_id = %s) s
            WHERE a.id = s.id
            """,
            [campaign_id],
        )
        cur.execute(
            """
            INSERT INTO annotate_judgment (assignment_id, campaign_id, comparison_id,
                annotator_id, answers, presented, duration_ms, server_ms, is_gold, is_repeat,
                excluded, created_at)
            SELECT a.id, a.campaign_id, a.comparison_id, a.annotator_id,
                   json_build_object('overall', a.presented->>0), a.presented, 2000, 2100,
                   false, false, false, a.closed_at
            FROM annotate_assignment a WHERE a.campaign_id = %s
            """,
            [campaign_id],
        )
        cur.execute(
            """
            UPDATE annotate_comparison c SET done = sub.n,
                status = CASE WHEN sub.n >= c.wanted THEN 'full' ELSE 'open' END
            FROM (SELECT comparison_id, count(*) AS n FROM annotate_judgment
                  WHERE campaign_id = %s GROUP BY comparison_id) sub
            WHERE c.id = sub.comparison_id
            """,
            [campaign_id],
        )
        cur.execute(
            """
            UPDATE annotate_membership m SET issued = sub.n FROM (
                SELECT annotator_id, count(*) AS n FROM annotate_assignment
                WHERE campaign_id = %s GROUP BY annotator_id) sub
            WHERE m.user_id = sub.annotator_id AND m.campaign_id = %s
            """,
            [campaign_id, campaign_id],
        )
        cur.execute(
            """
            INSERT INTO authtoken_token (key, user_id, created)
            SELECT substr(md5(random()::text) || md5(id::text), 1, 40), id, now() FROM auth_user
            WHERE username LIKE 'rater%%' ORDER BY id DESC LIMIT %s
            RETURNING key
            """,
            [clients],
        )
        tokens = [row[0] for row in cur.fetchall()]
        cur.execute("ANALYZE")
    return {"campaign_id": campaign_id, "tokens": tokens, "history_raters": history_raters}


# ---------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough that the client
# does not steal the server's CPU on a 2-core machine.


class Connection:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: dict) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Token {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        for attempt in range(2):
            try:
                if self.writer is None:
                    await self.open()
                self.writer.write(request)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("closed")
                status = int(status_line.split()[1])
                length, close = 0, False
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                data = await self.reader.readexactly(length) if length else b""
                if close:
                    self.writer.close()
                    self.writer = None
                return status, data
            except (ConnectionError, asyncio.IncompleteReadError):
                self.writer = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@dataclass
class PhaseResult:
    name: str
    clients: int
    seconds: float
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    judgments: int = 0
    errors: int = 0
    empty: int = 0


async def annotator_loop(conn, campaign_id, think_ms, deadline, result, acknowledged, rng):
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        status, data = await conn.post(f"/api/campaigns/{campaign_id}/next/", {})
        result.next_ms.append((time.perf_counter() - t0) * 1000)
        if status == 204:
            result.empty += 1
            await asyncio.sleep(0.5)
            continue
        if status != 200:
            result.errors += 1
            await asyncio.sleep(0.1)
            continue
        task = json.loads(data)
        if think_ms:
            await asyncio.sleep(rng.expovariate(1000 / think_ms))
        answer = rng.choice([task["images"][0]["uid"], task["images"][1]["uid"], "tie"])
        t0 = time.perf_counter()
        status, data = await conn.post(
            f"/api/assignments/{task['id']}/submit/",
            {"answers": {"overall": answer}, "duration_ms": 1500},
        )
        result.submit_ms.append((time.perf_counter() - t0) * 1000)
        if status in (200, 201):
            result.judgments += 1
            acknowledged.append(json.loads(data)["id"])
        else:
            result.errors += 1


async def run_phase(name, *, port, campaign_id, tokens, think_ms, seconds, acknowledged):
    result = PhaseResult(name=name, clients=len(tokens), seconds=seconds)
    conns = [Connection("127.0.0.1", port, token) for token in tokens]
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            annotator_loop(
                conn, campaign_id, think_ms, deadline, result, acknowledged, random.Random(i)
            )
            for i, conn in enumerate(conns)
        )
    )
    for conn in conns:
        if conn.writer is not None:
            conn.writer.close()
    return result


# ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_gunicorn(port: int, workers: int, database_url: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        # Production path: submit enqueues quality evaluations on Redis (nothing consumes
        # them during the run; they only cost the enqueue).
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        DEBUG="0",
        THROTTLE_SUBMIT="100000/min",
        THROTTLE_NEXT="100000/min",
        LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pickwise.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def check_invariants(campaign_id: int, acknowledged: list[int]) -> dict:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM annotate_comparison WHERE campaign_id = %s AND role = 'regular'"
            " AND done > wanted",
            [campaign_id],
        )
        over = cur.fetchone()[0]
        cur.execute(
            """SELECT count(*) FROM (SELECT annotator_id, comparison_id FROM annotate_judgment
               WHERE campaign_id = %s AND NOT is_repeat GROUP BY 1, 2 HAVING count(*) > 1) d""",
            [campaign_id],
        )
        duplicates = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM annotate_judgment WHERE id = ANY(%s)", [acknowledged])
        stored = cur.fetchone()[0]
        cur.execute(
            """SELECT count(*) FROM annotate_comparison c WHERE campaign_id = %s AND done <>
               (SELECT count(*) FROM annotate_judgment j WHERE j.comparison_id = c.id
                AND NOT j.is_repeat AND NOT j.excluded)""",
            [campaign_id],
        )
        counter_drift = cur.fetchone()[0]
    return {
        "comparisons over overlap": over,
        "duplicate (annotator, comparison)": duplicates,
        "acknowledged submits": len(acknowledged),
        "acknowledged and stored": stored,
        "done counters off": counter_drift,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--judgments", type=int, default=100_000, help="history before the run")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--saturation-clients", type=int, default=32)
    parser.add_argument("--think-ms", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()

    overlap = max(3, -(-args.judgments // args.comparisons) + 2)
    recreate_database(args.database_url)
    setup_django(args.database_url)
    t0 = time.perf_counter()
    data = build_data(
        comparisons=args.comparisons,
        judgments=args.judgments,
        clients=args.clients,
        overlap=overlap,
    )
    built = time.perf_counter() - t0

    import django

    print("# annotation loop benchmark")
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Django {django.get_version()}, PostgreSQL via psycopg 3, gunicorn gthread"
        f" {args.workers}x4"
    )
    print(
        f"data: {args.comparisons} comparisons, {args.judgments} judgments of history by"
        f" {data['history_raters']} raters, overlap {overlap}; built in {built:.1f} s"
    )

    port = 18000 + random.randrange(1000)
    server = start_gunicorn(port, args.workers, args.database_url)
    acknowledged: list[int] = []
    tokens = data["tokens"]
    try:
        # Warm up each worker process's connection and caches.
        asyncio.run(
            run_phase(
                "warm-up",
                port=port,
                campaign_id=data["campaign_id"],
                tokens=tokens[-4:],
                think_ms=0,
                seconds=3,
                acknowledged=acknowledged,
            )
        )
        phases = [
            ("1 annotator, no think time", tokens[:1], 0),
            (
                f"{args.saturation_clients} annotators, no think time (saturation)",
                tokens[1 : 1 + args.saturation_clients],
                0,
            ),
            (
                f"{args.clients} annotators, think {args.think_ms:.0f} ms (exp.)",
                tokens,
                args.think_ms,
            ),
        ]
        results = [
            asyncio.run(
                run_phase(
                    name,
                    port=port,
                    campaign_id=data["campaign_id"],
                    tokens=toks,
                    think_ms=think,
                    seconds=args.seconds,
                    acknowledged=acknowledged,
                )
            )
            for name, toks, think in phases
        ]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    print()
    print("| phase | next p50 / p95 / p99 ms | submit p50 / p95 / p99 ms | judgments/s | errors |")
    print("|---|---|---|---|---|")
    for r in results:
        n = [percentile(r.next_ms, q) for q in (0.5, 0.95, 0.99)]
        s = [percentile(r.submit_ms, q) for q in (0.5, 0.95, 0.99)]
        print(
            f"| {r.name} | {n[0]:.1f} / {n[1]:.1f} / {n[2]:.1f} | {s[0]:.1f} / {s[1]:.1f} /"
            f" {s[2]:.1f} | {r.judgments / r.seconds:.1f} | {r.errors} |"
        )
    invariants = check_invariants(data["campaign_id"], acknowledged)
    print()
    for key, value in invariants.items():
        print(f"- {key}: {value}")
    ok = (
        invariants["comparisons over overlap"] == 0
        and invariants["duplicate (annotator, comparison)"] == 0
        and invariants["acknowledged and stored"] == invariants["acknowledged submits"]
        and invariants["done counters off"] == 0
        and all(r.errors == 0 for r in results)
    )
    single, saturated, thinking = results
    print()
    print(
        f"summary: 1 annotator next p50 {statistics.median(single.next_ms):.1f} ms, submit p50"
        f" {statistics.median(single.submit_ms):.1f} ms; saturation"
        f" {saturated.judgments / saturated.seconds:.0f} judgments/s; {thinking.clients} thinking"
        f" annotators p99 next {percentile(thinking.next_ms, 0.99):.1f} ms, submit"
        f" {percentile(thinking.submit_ms, 0.99):.1f} ms; invariants {'hold' if ok else 'BROKEN'}"
    )


if __name__ == "__main__":
    main()
