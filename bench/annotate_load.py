"""Load benchmark of the annotation loop: gunicorn + PostgreSQL, annotators over HTTP.

    python bench/annotate_load.py --scale 10k     # 10,000 comparisons, 100,000 judgments
    python bench/annotate_load.py --scale 100k    # 100,000 comparisons, 1,000,000 judgments

Builds a campaign of N pairwise comparisons with M judgments of history (bulk SQL), starts
gunicorn on loopback with the production settings (gunicorn.conf.py) and the default queue's
Celery worker with beat, and runs three phases of simulated annotators doing next + submit:
one annotator without think time, saturation (many annotators without think time), and
many annotators thinking an exponentially distributed time between tasks (each starts after
a think time of its own; --arrival together starts them all at once). Prints latency
percentiles (p50 to p99.9) per call, judgments/s, CPU per process group, what the database's
backends waited on (pg_stat_activity, sampled), where the slowest 1% of requests spent their
time (the server's Server-Timing header: wall, CPU, SQL, COMMIT, GC), then checks the
invariants: no comparison over its overlap, no annotator judging a regular comparison twice,
every acknowledged submit stored. The summary line says which targets are met.

Needs PostgreSQL (--database-url, default postgres://postgres@127.0.0.1:5432/pickwise_bench;
the database is dropped and rebuilt) and Redis as the broker (CELERY_BROKER_URL, default
redis://127.0.0.1:6379/15), as in production. --py-spy DIR also records the web processes
with py-spy (a bench-only tool: pip install py-spy).
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
import tempfile
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

    from annotate.models import Campaign, Comparison

    call_command("migrate", verbosity=0)
    history_raters = max(10, judgments // 500)
    with connection.cursor() as cur:
        # Bulk load: no foreign-key trigger per inserted row (the rows are built consistent
        # here; the invariants are checked after the run). Needs a superuser, as the bench's
        # own database does.
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT '!', false, 'rater' || g, '', '', '', false, true, now()
            FROM generate_series(1, %s) g
            """,
            [history_raters + clients],
        )
        # One row, through the model: its defaults cover the options added since.
        campaign_id = Campaign.objects.create(
            slug="bench",
            title="Load benchmark",
            kind=Campaign.Kind.PAIRWISE,
            k=2,
            criteria=[
                {
                    "key": "overall",
                    "question": "Which is better?",
                    "allow_tie": True,
                    "allow_both_bad": True,
                }
            ],
            overlap=overlap,
            gold_rate=0.02,
            repeat_rate=0.05,
            qualification_size=0,
            lease_seconds=600,
            status=Campaign.Status.ACTIVE,
        ).pk
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
                done, in_flight, status, priority, created_at)
            SELECT %s, p.id, min(i.id) || '-' || max(i.id), 'regular', '', %s, 0, 0, 'open', %s,
                   now()
            FROM annotate_prompt p JOIN annotate_image i ON i.prompt_id = p.id
            WHERE p.campaign_id = %s GROUP BY p.id
            """,
            [campaign_id, overlap, Comparison._meta.get_field("priority").default, campaign_id],
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
        # Each rater's tasks are numbered (sequence) in the same statement: a second pass
        # over a million rows (UPDATE) was the slowest step of the 100k build.
        cur.execute(
            """
            INSERT INTO annotate_assignment (campaign_id, comparison_id, annotator_id, presented,
                issued_at, expires_at, state, is_gold, is_repeat, sequence, closed_at)
            SELECT %(c)s, comps.id, raters.id, comps.presented,
                   now() - interval '1 day', now() - interval '1 day' + interval '10 minutes',
                   'submitted', false, false,
                   row_number() OVER (PARTITION BY raters.id ORDER BY g) - 1,
                   now() - interval '1 day'
            FROM generate_series(0, %(m)s - 1) g
            JOIN comps ON comps.n = g %% %(n)s
            JOIN raters ON raters.n = (g / %(n)s + g %% %(n)s) %% %(r)s
            """,
            {"c": campaign_id, "n": comparisons, "r": history_raters, "m": judgments},
        )
        cur.execute(
            """
            INSERT INTO annotate_judgment (assignment_id, campaign_id, comparison_id,
                annotator_id, answers, presented, duration_ms, server_ms, is_gold, is_repeat,
                excluded, never_shown, created_at)
            SELECT a.id, a.campaign_id, a.comparison_id, a.annotator_id,
                   json_build_object('overall', a.presented->>0), a.presented, 2000, 2100,
                   false, false, false, false, a.closed_at
            FROM annotate_assignment a WHERE a.campaign_id = %s
            """,
            [campaign_id],
        )
        # Comparison n got judgments n, n + N, n + 2N, ...: counted, not recounted.
        cur.execute(
            """
            UPDATE annotate_comparison c SET done = sub.n,
                status = CASE WHEN sub.n >= c.wanted THEN 'full' ELSE 'open' END
            FROM (SELECT id, %(m)s / %(n)s + (n < %(m)s %% %(n)s)::int AS n FROM comps) sub
            WHERE c.id = sub.id
            """,
            {"m": judgments, "n": comparisons},
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
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("ANALYZE")
    return {"campaign_id": campaign_id, "tokens": tokens, "history_raters": history_raters}


# ---------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough that the client
# does not steal the server's CPU on a 2-core machine.


class Connection:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader = self.writer = None
        # The last response's Server-Timing header (PICKWISE_SERVER_TIMING), "" if none.
        self.server_timing = ""

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
                length, close, self.server_timing = 0, False, ""
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                    elif name.lower() == "server-timing":
                        self.server_timing = value.strip()
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


def parse_server_timing(value: str) -> dict[str, float]:
    """{'app': ms, 'cpu': ms, 'db': ms, 'queries': n, 'commit': ms, 'connect': ms, 'gc': ms} (see
    pickwise/server_timing.py); empty when the server sent no header."""
    figures: dict[str, float] = {}
    for part in value.split(","):
        name, *params = part.strip().split(";")
        for param in params:
            key, _, number = param.partition("=")
            if key == "dur":
                figures[name] = float(number)
            elif key == "desc" and name == "db":
                figures["queries"] = float(number.strip('"'))
    return figures


@dataclass
class Call:
    at: float  # seconds from the phase's start to the request
    ms: float  # as the client saw it
    server: dict[str, float]  # the response's Server-Timing figures


@dataclass
class PhaseResult:
    name: str
    key: str
    clients: int
    seconds: float
    next: list[Call] = field(default_factory=list)
    submit: list[Call] = field(default_factory=list)
    judgments: int = 0
    errors: int = 0
    empty: int = 0
    error_samples: list[str] = field(default_factory=list)  # the first few, for the report
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, per process group
    waits: dict = field(default_factory=dict)  # what the database's backends waited on
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and the end

    @property
    def next_ms(self) -> list[float]:
        return [c.ms for c in self.next]

    @property
    def submit_ms(self) -> list[float]:
        return [c.ms for c in self.submit]

    @property
    def rate(self) -> float:
        return self.judgments / self.seconds


async def annotator_loop(
    conn, campaign_id, think_ms, start_after, phase, result, acknowledged, rng
):
    start, deadline = phase
    if start_after:
        await asyncio.sleep(start_after)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        status, data = await conn.post(f"/api/campaigns/{campaign_id}/next/", {})
        ms = (time.perf_counter() - t0) * 1000
        result.next.append(Call(t0 - start, ms, parse_server_timing(conn.server_timing)))
        if status == 204:
            result.empty += 1
            await asyncio.sleep(0.5)
            continue
        if status != 200:
            result.errors += 1
            if len(result.error_samples) < 3:
                result.error_samples.append(f"next {status} {data[:160]!r}")
            await asyncio.sleep(0.1)
            continue
        task = json.loads(data)
        if think_ms:
            await asyncio.sleep(rng.expovariate(1000 / think_ms))
        # A consistent rater: mostly the same side of a pair, whoever asks and in whichever
        # order it is shown. Answering at random got the simulated annotators blocked by the
        # quality rules (speed with a suspicion of carelessness) once the worker evaluated them.
        uids = sorted(image["uid"] for image in task["images"])
        answer = uids[0] if rng.random() < 0.9 else rng.choice([uids[1], "tie"])
        t0 = time.perf_counter()
        status, data = await conn.post(
            f"/api/assignments/{task['id']}/submit/",
            {"answers": {"overall": answer}, "duration_ms": 1500},
        )
        ms = (time.perf_counter() - t0) * 1000
        result.submit.append(Call(t0 - start, ms, parse_server_timing(conn.server_timing)))
        if status in (200, 201):
            result.judgments += 1
            acknowledged.append(json.loads(data)["id"])
        else:
            result.errors += 1
            if len(result.error_samples) < 3:
                result.error_samples.append(f"submit {status} {data[:160]!r}")


async def run_phase(
    name, key, *, port, campaign_id, tokens, think_ms, seconds, acknowledged, arrival="spread"
):
    """`arrival`: "spread" starts each annotator after a think time of its own (so requests
    arrive as they do later in the phase, from the first second); "together" starts all at
    once, as if the campaign opened with everyone waiting."""
    result = PhaseResult(name=name, key=key, clients=len(tokens), seconds=seconds)
    conns = [Connection("127.0.0.1", port, token) for token in tokens]
    rngs = [random.Random(i) for i in range(len(conns))]
    start = time.perf_counter()
    phase = (start, start + seconds)
    await asyncio.gather(
        *(
            annotator_loop(
                conn,
                campaign_id,
                think_ms,
                rng.expovariate(1000 / think_ms) if think_ms and arrival == "spread" else 0,
                phase,
                result,
                acknowledged,
                rng,
            )
            for conn, rng in zip(conns, rngs, strict=True)
        )
    )
    for conn in conns:
        if conn.writer is not None:
            conn.writer.close()
    return result


# ---------------------------------------------------------------------------------------
# What the machine did during a phase: CPU per process group, and what the database's
# backends were waiting on (sampled from pg_stat_activity).


def _cpu_seconds(pids) -> dict[int, float]:
    import psutil

    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _tree(pid: int | None) -> list[int]:
    import psutil

    if pid is None:
        return []
    try:
        return [pid] + [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


class Monitor:
    """Samples pg_stat_activity for the bench database every `interval` seconds and counts
    CPU time per process group (web, worker, database backends, this client) over a phase."""

    QUERY = """
        SELECT pid, coalesce(wait_event_type || ':' || wait_event, 'on CPU'),
               left(regexp_replace(query, '\\s+', ' ', 'g'), 60),
               extract(epoch FROM clock_timestamp() - query_start) * 1000
        FROM pg_stat_activity
        WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()
    """

    def __init__(self, database_url: str, *, web: int, worker: int | None, interval=0.05):
        import threading

        import psycopg

        self.database_url = database_url
        self.db_name = database_url.rsplit("/", 1)[1]
        self.conn = psycopg.connect(database_url, autocommit=True)
        self.web, self.worker, self.interval = web, worker, interval
        self.threading = threading

    def _backends(self) -> list[int]:
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db_name],
            )
        ]

    def _groups(self) -> dict[str, dict[int, float]]:
        return {
            "web": _cpu_seconds(_tree(self.web)),
            "worker": _cpu_seconds(_tree(self.worker)),
            "database": _cpu_seconds(self._backends()),
            "client": _cpu_seconds([os.getpid()]),
        }

    def start(self) -> None:
        import psutil

        self.samples: list[list[tuple]] = []
        self.stop_event = self.threading.Event()
        self.cpu_before = self._groups()
        self.machine_before = psutil.cpu_times()
        self.wall_before = time.perf_counter()
        self.sample_conn = __import__("psycopg").connect(self.database_url, autocommit=True)
        self.thread = self.threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.samples.append(list(self.sample_conn.execute(self.QUERY, [self.db_name])))

    def stop(self, result: PhaseResult) -> None:
        import psutil

        self.stop_event.set()
        self.thread.join()
        self.sample_conn.close()
        wall = time.perf_counter() - self.wall_before
        after = self._groups()
        cores = {}
        for group, seconds in after.items():
            before = self.cpu_before[group]
            used = sum(s - before.get(pid, 0.0) for pid, s in seconds.items())
            cores[group] = used / wall
        machine = psutil.cpu_times()
        busy = sum(
            getattr(machine, f) - getattr(self.machine_before, f)
            for f in ("user", "system", "nice", "irq", "softirq", "steal")
        )
        cores["everything else"] = max(0.0, busy / wall - sum(cores.values()))
        result.cpu = cores
        waits: dict[str, int] = {}
        lock_waits: list[tuple[float, str]] = []
        active = 0
        for sample in self.samples:
            active += len(sample)
            for _, event, query, ms in sample:
                waits[event] = waits.get(event, 0) + 1
                if event.startswith("Lock:"):
                    lock_waits.append((float(ms or 0), query))
        lock_waits.sort(reverse=True)
        result.waits = {
            "samples": len(self.samples),
            "active per sample": active / max(1, len(self.samples)),
            "events": dict(sorted(waits.items(), key=lambda item: -item[1])),
            "samples with a lock wait": sum(
                any(event.startswith("Lock:") for _, event, _, _ in s) for s in self.samples
            ),
            "longest lock waits": lock_waits[:3],
        }

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def server_env(database_url: str) -> dict:
    return dict(
        os.environ,
        DATABASE_URL=database_url,
        # Production path: submit enqueues quality evaluations on Redis, and the worker
        # (unless --no-worker) runs them on the same cores.
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        DEBUG="0",
        THROTTLE_SUBMIT="100000/min",
        THROTTLE_NEXT="100000/min",
        LOG_LEVEL="WARNING",
        PICKWISE_SERVER_TIMING="1",
    )


def start_gunicorn(port: int, args, database_url: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pickwise.wsgi",
            "--config",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            # Production logs every request (docker-compose.yml); pay for the line here too.
            "--access-logfile",
            "/dev/null",
            *(["--workers", str(args.workers)] if args.workers else []),
            *(["--threads", str(args.threads)] if args.threads else []),
        ],
        cwd=ROOT,
        env=server_env(database_url),
        start_new_session=True,
    )
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                wait_until_idle(process.pid)
                return process
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("gunicorn did not start")


def wait_until_idle(master: int, timeout: float = 120) -> None:
    """gunicorn's master listens before its workers have imported Django, and Celery's
    worker takes seconds to start: wait until no process of the tree used CPU for half a
    second, so that none boots during a phase."""
    deadline = time.monotonic() + timeout
    before = _cpu_seconds(_tree(master))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _cpu_seconds(_tree(master))
        if len(now) > 1 and all(abs(now[pid] - before.get(pid, -1)) < 0.01 for pid in now):
            return
        before = now


def start_worker(args, database_url: str, schedule: str, log) -> subprocess.Popen:
    """The default queue's worker with beat, as production runs them (docker-compose.yml)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "pickwise",
            "worker",
            "-Q",
            "default",
            "-c",
            str(args.worker_concurrency),
            "-B",
            "-s",
            schedule,
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=server_env(database_url),
        start_new_session=True,
        # Its start-up banner and warnings would bury the report; errors still show.
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def stop_process(process: subprocess.Popen | None) -> None:
    """SIGTERM the process's own group (it was started in a session of its own), then kill."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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


def breakdown(calls: list[Call]) -> dict[str, float]:
    """Mean figures of these calls: what the client saw, and where the server's time went."""
    if not calls:
        return {}
    n = len(calls)

    def mean(name: str) -> float:
        return sum(c.server.get(name, 0.0) for c in calls) / n

    figures = {
        "calls": n,
        "client ms": sum(c.ms for c in calls) / n,
        "outside Django": sum(c.ms - c.server.get("app", 0.0) for c in calls) / n,
        "app": mean("app"),
        "cpu": mean("cpu"),
        "sql": mean("db"),
        "statements": mean("queries"),
        "commit": mean("commit"),
        "connect": mean("connect"),
        "gc": mean("gc"),
    }
    figures["runnable, not running"] = max(
        0.0,
        figures["app"] - figures["cpu"] - figures["sql"] - figures["commit"] - figures["connect"],
    )
    figures["share in first 3 s"] = sum(c.at < 3 for c in calls) / n
    return figures


def slowest(calls: list[Call], q: float = 0.99) -> list[Call]:
    cut = percentile([c.ms for c in calls], q)
    return [c for c in calls if c.ms >= cut]


TARGETS = {
    "p50": "1 annotator next and submit p50 < 10 ms",
    "saturation": "saturation >= 100 judgments/s",
    "p99": "thinking annotators next and submit p99 < 50 ms",
}


def targets_met(results: dict[str, PhaseResult]) -> dict[str, bool | None]:
    single, saturated, thinking = (results.get(k) for k in ("single", "saturation", "thinking"))
    return {
        "p50": None
        if single is None
        else statistics.median(single.next_ms) < 10 and statistics.median(single.submit_ms) < 10,
        "saturation": None if saturated is None else saturated.rate >= 100,
        "p99": None
        if thinking is None
        else percentile(thinking.next_ms, 0.99) < 50 and percentile(thinking.submit_ms, 0.99) < 50,
    }


def report(results: list[PhaseResult], invariants: dict, ok: bool) -> str:
    lines = [
        "| phase | next p50 / p95 / p99 / p99.9 ms | submit p50 / p95 / p99 / p99.9 ms"
        " | judgments/s | errors | load 1 min |",
        "|---|---|---|---|---|---|",
    ]
    qs = (0.5, 0.95, 0.99, 0.999)
    for r in results:
        n = " / ".join(f"{percentile(r.next_ms, q):.1f}" for q in qs)
        s = " / ".join(f"{percentile(r.submit_ms, q):.1f}" for q in qs)
        lines.append(
            f"| {r.name} | {n} | {s} | {r.rate:.1f} | {r.errors} |"
            f" {r.load[0]:.1f} → {r.load[1]:.1f} |"
        )
    lines += ["", "CPU in cores (2 = the whole machine) and database backends' activity:", ""]
    lines.append(
        "| phase | web | database | worker | client | everything else | active backends"
        " | waits (share of backend samples) | longest lock wait |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        events = r.waits.get("events", {})
        total = sum(events.values()) or 1
        top = ", ".join(f"{e} {n / total:.0%}" for e, n in list(events.items())[:4])
        longest = r.waits.get("longest lock waits") or []
        lock = f"{longest[0][0]:.0f} ms: {longest[0][1]}" if longest else "none seen"
        c = r.cpu
        lines.append(
            f"| {r.name} | {c.get('web', 0):.2f} | {c.get('database', 0):.2f} |"
            f" {c.get('worker', 0):.2f} | {c.get('client', 0):.2f} |"
            f" {c.get('everything else', 0):.2f} | {r.waits.get('active per sample', 0):.1f}"
            f" | {top} | {lock} |"
        )
    lines += [
        "",
        "Where the time went (means, ms): every call, and the slowest 1% (p99 and above);"
        " 'outside Django' is the client's time less the server's (queue, HTTP, client);"
        " 'runnable' is app - cpu - sql - commit - connect (GIL or a core):",
        "",
        "| phase | call | calls | client | outside Django | app | cpu | sql (statements)"
        " | commit | connect | gc | runnable | in first 3 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for call, calls in (("next", r.next), ("submit", r.submit)):
            for label, group in (("all", calls), ("slowest 1%", slowest(calls))):
                b = breakdown(group)
                if not b:
                    continue
                lines.append(
                    f"| {r.name} | {call} {label} | {b['calls']} | {b['client ms']:.1f} |"
                    f" {b['outside Django']:.1f} | {b['app']:.1f} | {b['cpu']:.1f} |"
                    f" {b['sql']:.1f} ({b['statements']:.1f}) | {b['commit']:.1f} |"
                    f" {b['connect']:.1f} | {b['gc']:.1f} | {b['runnable, not running']:.1f} |"
                    f" {b['share in first 3 s']:.0%} |"
                )
    lines.append("")
    lines += [f"- {key}: {value}" for key, value in invariants.items()]
    for r in results:
        lines += [f"- error in {r.name}: {sample}" for sample in r.error_samples]
    return "\n".join(lines)


SCALES = {"10k": (10_000, 100_000), "100k": (100_000, 1_000_000)}
PHASES = ("single", "saturation", "thinking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="10k",
        help="10k: 10,000 comparisons and 100,000 judgments of history; 100k: 100,000 and 1M",
    )
    parser.add_argument("--comparisons", type=int, help="instead of --scale's")
    parser.add_argument("--judgments", type=int, help="history before the run (ditto)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--saturation-clients", type=int, default=32)
    parser.add_argument("--think-ms", type=float, default=3000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--arrival",
        choices=("spread", "together"),
        default="spread",
        help="thinking annotators start after a think time of their own (spread) or all at once",
    )
    parser.add_argument(
        "--phases", default=",".join(PHASES), help="a subset of " + ", ".join(PHASES)
    )
    parser.add_argument("--workers", type=int, default=None, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=None, help="threads per gunicorn process")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery default queue")
    parser.add_argument("--no-worker", action="store_true", help="no Celery worker or beat")
    parser.add_argument("--py-spy", metavar="DIR", help="record the web processes with py-spy")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()
    comparisons = args.comparisons or SCALES[args.scale][0]
    judgments = args.judgments if args.judgments is not None else SCALES[args.scale][1]
    phases_wanted = args.phases.split(",")
    if unknown := set(phases_wanted) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    overlap = max(3, -(-judgments // comparisons) + 2)
    recreate_database(args.database_url)
    setup_django(args.database_url)
    t0 = time.perf_counter()
    data = build_data(
        comparisons=comparisons, judgments=judgments, clients=args.clients, overlap=overlap
    )
    built = time.perf_counter() - t0

    import django

    serving = gunicorn_settings(args)
    print("# annotation loop benchmark")
    print(
        f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Django {django.get_version()}, PostgreSQL via psycopg 3, gunicorn {serving};"
        + (
            " no Celery worker"
            if args.no_worker
            else f" Celery default worker -c {args.worker_concurrency} with beat"
        )
    )
    print(
        f"data: {comparisons} comparisons, {judgments} judgments of history by"
        f" {data['history_raters']} raters, overlap {overlap}; built in {built:.1f} s"
    )

    port = 18000 + random.randrange(1000)
    server = worker = monitor = None
    acknowledged: list[int] = []
    tokens = data["tokens"]
    results: dict[str, PhaseResult] = {}
    spies: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as scratch:
        try:
            server = start_gunicorn(port, args, args.database_url)
            if not args.no_worker:
                worker_log = open(Path(scratch) / "worker.log", "w+")  # noqa: SIM115
                worker = start_worker(
                    args, args.database_url, str(Path(scratch) / "beat"), worker_log
                )
                wait_until_idle(worker.pid)
            monitor = Monitor(
                args.database_url, web=server.pid, worker=worker.pid if worker else None
            )
            # Warm up every web thread's database connection and caches.
            asyncio.run(
                run_phase(
                    "warm-up",
                    "warm-up",
                    port=port,
                    campaign_id=data["campaign_id"],
                    tokens=tokens[-16:],
                    think_ms=0,
                    seconds=3,
                    acknowledged=acknowledged,
                )
            )
            phases = {
                "single": ("1 annotator, no think time", tokens[:1], 0),
                "saturation": (
                    f"{args.saturation_clients} annotators, no think time (saturation)",
                    tokens[1 : 1 + args.saturation_clients],
                    0,
                ),
                "thinking": (
                    f"{args.clients} annotators, think {args.think_ms:.0f} ms (exp.)"
                    + (", arriving together" if args.arrival == "together" else ""),
                    tokens,
                    args.think_ms,
                ),
            }
            for key in PHASES:
                if key not in phases_wanted:
                    continue
                name, toks, think = phases[key]
                if args.py_spy and key == "thinking":
                    spies = start_py_spy(server.pid, args.py_spy, args.seconds)
                load_before = os.getloadavg()[0]
                monitor.start()
                result = asyncio.run(
                    run_phase(
                        name,
                        key,
                        port=port,
                        campaign_id=data["campaign_id"],
                        tokens=toks,
                        think_ms=think,
                        seconds=args.seconds,
                        acknowledged=acknowledged,
                        arrival=args.arrival,
                    )
                )
                monitor.stop(result)
                result.load = (load_before, os.getloadavg()[0])
                results[key] = result
        finally:
            for spy in spies:
                spy.wait()
            stop_process(server)
            stop_process(worker)
            if worker is not None:
                worker_log.seek(0)
                errors = [line for line in worker_log if "ERROR" in line or "Traceback" in line]
                if errors:
                    print("worker errors:", *errors[:20], sep="\n")
                worker_log.close()
            if monitor is not None:
                monitor.close()

    invariants = check_invariants(data["campaign_id"], acknowledged)
    ok = (
        invariants["comparisons over overlap"] == 0
        and invariants["duplicate (annotator, comparison)"] == 0
        and invariants["acknowledged and stored"] == invariants["acknowledged submits"]
        and invariants["done counters off"] == 0
        and all(r.errors == 0 for r in results.values())
    )
    print()
    print(report(list(results.values()), invariants, ok))
    if args.py_spy:
        print()
        print(summarise_py_spy(args.py_spy))
    met = targets_met(results)
    parts = []
    if single := results.get("single"):
        parts.append(
            f"1 annotator next p50 {statistics.median(single.next_ms):.1f} ms, submit p50"
            f" {statistics.median(single.submit_ms):.1f} ms"
        )
    if saturated := results.get("saturation"):
        parts.append(f"saturation {saturated.rate:.0f} judgments/s")
    if thinking := results.get("thinking"):
        parts.append(
            f"{thinking.clients} thinking annotators p99 next"
            f" {percentile(thinking.next_ms, 0.99):.1f} ms, submit"
            f" {percentile(thinking.submit_ms, 0.99):.1f} ms (p99.9"
            f" {percentile(thinking.next_ms, 0.999):.1f} / {percentile(thinking.submit_ms, 0.999):.1f})"
        )
    verdicts = ", ".join(
        f"{TARGETS[k]}: {'met' if v else 'NOT met'}" for k, v in met.items() if v is not None
    )
    print()
    print(
        f"summary ({comparisons} comparisons, {judgments} judgments): {'; '.join(parts)};"
        f" invariants {'hold' if ok else 'BROKEN'}. Targets: {verdicts}."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "invariants": invariants,
                    "targets": met,
                    "phases": {
                        key: {
                            "name": r.name,
                            "judgments/s": r.rate,
                            "errors": r.errors,
                            "cpu": r.cpu,
                            "waits": r.waits,
                            "load": r.load,
                            "next": [(c.at, c.ms, c.server) for c in r.next],
                            "submit": [(c.at, c.ms, c.server) for c in r.submit],
                        }
                        for key, r in results.items()
                    },
                }
            )
        )
    if not ok:
        sys.exit(1)


def gunicorn_settings(args) -> str:
    """Workers x threads as gunicorn.conf.py resolves them, with this run's overrides."""
    import runpy

    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers = args.workers or conf["workers"]
    threads = args.threads or conf["threads"]
    return f"{conf['worker_class']} {workers}x{threads} (gunicorn.conf.py)"


# Functions whose inclusive share of the web processes' samples the py-spy summary lists.
SPY_FUNCTIONS = (
    "AssignmentNextApi.post",
    "JudgmentSubmitApi.post",
    "campaign_get_for_annotator",
    "assignment_get_for_annotator",
    "assignment_next",
    "judgment_submit",
    "quality_on_submit",
    "SQLCompiler.as_sql",
    "Connection.wait",
    "BaseDatabaseWrapper.commit",
)


def summarise_py_spy(folder: str) -> str:
    """Where the web threads were when sampled: the most frequent innermost frames, and the
    inclusive share of the hot path's functions (py-spy's collapsed stacks, all processes)."""
    leaves: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for path in Path(folder).glob("web-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = [frame.split(" (")[0] for frame in stack.split(";")]
            n = int(count)
            total += n
            leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
            for name in set(frames):
                inclusive[name] = inclusive.get(name, 0) + n
    if not total:
        return "py-spy: no samples"
    lines = [f"py-spy, {total} samples of the web threads (inclusive share):", ""]
    lines += [f"- {name}: {inclusive.get(name, 0) / total:.1%}" for name in SPY_FUNCTIONS]
    lines += ["", "innermost frames:", ""]
    top = sorted(leaves.items(), key=lambda item: -item[1])[:10]
    lines += [f"- {name}: {n / total:.1%}" for name, n in top]
    return "\n".join(lines)


def start_py_spy(master: int, folder: str, seconds: float) -> list[subprocess.Popen]:
    """py-spy (pip install py-spy; a bench-only tool) on each web process for the phase,
    as collapsed stacks: DIR/web-<pid>.txt."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(Path(folder) / f"web-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in _tree(master)[1:]
    ]


if __name__ == "__main__":
    main()
