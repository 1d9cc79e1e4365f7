"""Load on the embedded default: `make run`'s server (scripts/run-embedded.sh: gunicorn and
one worker, SQLite and the filesystem broker in a fresh var folder), annotators over HTTP.

    python bench/embedded_load.py --annotators 200 --seconds 60

Builds a campaign through the real services, gives each annotator a token, starts the
script as `make run` does and runs the annotators at once: next, think, submit, again.
Prints the answers by status, the 5xx count and the p50/p99 latency of next and submit,
how many server log lines say "database is locked", then checks that every acknowledged
submit is stored, once. --think-ms 0 runs them without pause (saturation).
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "scripts/run-embedded.sh"
sys.path.insert(0, str(ROOT))

from bench.annotate_load import Connection, percentile  # noqa: E402

_BUILD = """
import json, sys
import django
django.setup()
from rest_framework.authtoken.models import Token
from tests.factories import annotator, campaign_with_comparisons
prompts, annotators, overlap = (int(a) for a in sys.argv[1:4])
campaign = campaign_with_comparisons(
    prompts=prompts, models=("model-a", "model-b", "model-c"), overlap=overlap,
    gold_rate=0.0, repeat_rate=0.0,
)
tokens = [Token.objects.create(user=annotator(campaign)).key for _ in range(annotators)]
print(json.dumps({"campaign": campaign.pk, "tokens": tokens}))
"""


@dataclass
class LoadResult:
    annotators: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> dict:
        def ms(values: list[float]) -> dict:
            return {
                "n": len(values),
                "p50": round(percentile(values, 0.5), 1),
                "p99": round(percentile(values, 0.99), 1),
            }

        return {
            "annotators": self.annotators,
            "seconds": self.seconds,
            "answers by status": dict(sorted(self.statuses.items())),
            "5xx": self.server_errors,
            "connection failures": dict(self.failures),
            "next ms": ms(self.next_ms),
            "submit ms": ms(self.submit_ms),
            "judgments/s": round(len(self.acknowledged) / self.seconds, 1),
        }


def embedded_env(var_dir: Path) -> dict[str, str]:
    """`make run`'s environment: DEBUG on, nothing else set but a private var folder."""
    drop = {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "PICKWISE_TESTING"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {
        "PICKWISE_VAR_DIR": str(var_dir),
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        # The crowd comes from one address: per-user limits stay, the login limit is moot.
        "THROTTLE_SUBMIT": "100000/min",
        "THROTTLE_NEXT": "100000/min",
    }
    return env


def build(env: dict, *, prompts: int, annotators: int, overlap: int) -> dict:
    python = [sys.executable]
    subprocess.run(
        [*python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    out = subprocess.run(
        [*python, "-c", _BUILD, str(prompts), str(annotators), str(overlap)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedServer:
    """scripts/run-embedded.sh, as `make run` starts it, with its log in a file."""

    def __init__(self, env: dict, port: int, log_path: Path, script: str = SCRIPT):
        self.env = {
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "BIN": str(Path(sys.executable).parent),
        }
        self.port = port
        self.script = script
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, wait_seconds: float = 180) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [self.script],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + wait_seconds
        while True:
            assert self.process.poll() is None, f"the server stopped:\n{self.log()[-3000:]}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, f"the server did not start:\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # its trap stops gunicorn and the worker
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def _annotator(conn, campaign_id, think_ms, deadline, result, rng) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            status, data = await conn.post(f"/api/campaigns/{campaign_id}/next/", {})
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
            result.failures[type(error).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        result.next_ms.append((time.perf_counter() - started) * 1000)
        result.statuses[status] += 1
        if status != 200:
            await asyncio.sleep(0.5)  # 204: nothing left for now; errors: back off a little
            continue
        task = json.loads(data)
        if think_ms:
            await asyncio.sleep(rng.expovariate(1000 / think_ms))
        answer = rng.choice([task["images"][0]["uid"], task["images"][1]["uid"], "tie"])
        started = time.perf_counter()
        try:
            status, data = await conn.post(
                f"/api/assignments/{task['id']}/submit/",
                {"answers": {"overall": answer}, "duration_ms": 1500},
            )
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
            result.failures[type(error).__name__] += 1
            continue
        result.submit_ms.append((time.perf_counter() - started) * 1000)
        result.statuses[status] += 1
        if status in (200, 201):
            result.acknowledged.append(json.loads(data)["id"])


async def _crowd(port, campaign_id, tokens, think_ms, seconds) -> LoadResult:
    result = LoadResult(annotators=len(tokens), seconds=seconds)
    connections = [Connection("127.0.0.1", port, token) for token in tokens]
    deadline = time.perf_counter() + seconds
    await asyncio.gather(
        *(
            _annotator(conn, campaign_id, think_ms, deadline, result, random.Random(i))
            for i, conn in enumerate(connections)
        )
    )
    for conn in connections:
        if conn.writer is not None:
            conn.writer.close()
    return result


def warm_up(port: int, token: str, requests: int = 16) -> None:
    """A few reads first, so every gunicorn worker has loaded the URLs and the API before
    the clock runs (Django imports them on a process's first request)."""
    for _ in range(requests):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/campaigns/", headers={"Authorization": f"Token {token}"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (loopback)
            response.read()


def check_stored(database: Path, campaign_id: int, acknowledged: list[int]) -> dict:
    """Every acknowledged submit stored once, no annotator twice on a comparison."""
    with closing(sqlite3.connect(database, timeout=60)) as db:
        stored = {
            row[0]
            for row in db.execute(
                "SELECT id FROM annotate_judgment WHERE campaign_id = ?", (campaign_id,)
            )
        }
        (twice,) = db.execute(
            """SELECT count(*) FROM (SELECT annotator_id, comparison_id FROM annotate_judgment
               WHERE campaign_id = ? GROUP BY 1, 2 HAVING count(*) > 1)""",
            (campaign_id,),
        ).fetchone()
    return {
        "acknowledged": len(acknowledged),
        "acknowledged twice": len(acknowledged) - len(set(acknowledged)),
        "acknowledged but missing": len(set(acknowledged) - stored),
        "judgments stored": len(stored),
        "annotator twice on a comparison": twice,
    }


def run(
    *,
    annotators: int,
    seconds: float,
    think_ms: float,
    prompts: int,
    overlap: int = 3,
    var_dir: Path | None = None,
    script: str = SCRIPT,
) -> dict:
    """Build, serve, load, stop, check; returns the figures (see summary and check_stored)."""
    var_dir = var_dir or Path(tempfile.mkdtemp(prefix="pickwise-load-"))
    env = embedded_env(var_dir)
    data = build(env, prompts=prompts, annotators=annotators, overlap=overlap)
    server = EmbeddedServer(env, free_port(), var_dir / "server.log", script)
    server.start()
    try:
        warm_up(server.port, data["tokens"][0])
        result = asyncio.run(
            _crowd(server.port, data["campaign"], data["tokens"], think_ms, seconds)
        )
    finally:
        server.stop()
    log = server.log()
    return {
        **result.summary(),
        "think ms": think_ms,
        "'database is locked' in the server log": log.count("database is locked"),
        "worker alive until stopped": "The worker stopped." not in log,
        **check_stored(var_dir / "pickwise.sqlite3", data["campaign"], result.acknowledged),
        "var dir": str(var_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think-ms", type=float, default=1000, help="mean think time")
    parser.add_argument("--prompts", type=int, default=400, help="3 comparisons each")
    parser.add_argument(
        "--script", default=SCRIPT, help="another start script to compare, e.g. an older one"
    )
    args = parser.parse_args()
    figures = run(
        annotators=args.annotators,
        seconds=args.seconds,
        think_ms=args.think_ms,
        prompts=args.prompts,
        script=args.script,
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
