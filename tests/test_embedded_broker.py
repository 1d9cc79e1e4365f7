"""The embedded broker (pickwise/broker.py): kombu's filesystem transport with atomic message
files. A worker consuming while 10,000 messages are written gets each exactly once and does
not die; a file that cannot be read is set aside instead of killing the consumer."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from kombu import Connection

from tests.test_embedded_runtime import ROOT, embedded_env, run_python

BURST = 10_000
PRODUCERS = 2
WAIT_SECONDS = 900

_PRODUCE = """
import sys
import django
django.setup()
from tests.broker_probe import record
path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for number in range(start, start + count):
    record.delay(path, number)
"""


@pytest.fixture
def queue_name() -> str:
    # kombu keeps declared bindings in process-wide state: a fresh queue per test, so each
    # test's binding is written to its own control folder.
    return f"q{uuid.uuid4().hex[:12]}"


def _connection(folder) -> Connection:
    for sub in ("in", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return Connection(
        "filesystem://",
        transport="pickwise.broker:Transport",
        transport_options={
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
        },
    )


def test_messages_are_written_whole_and_taken_once(tmp_path, queue_name):
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue(queue_name)
        for number in range(5):
            queue.put({"n": number})
        assert not [n for n in os.listdir(tmp_path / "in") if n.startswith(".")]  # no leftovers
        got = [queue.get(timeout=1) for _ in range(5)]
        for message in got:
            message.ack()
        assert [m.payload["n"] for m in got] == [0, 1, 2, 3, 4]
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
        queue.close()
    assert os.listdir(tmp_path / "in") == []


def test_an_unreadable_message_file_is_set_aside_and_the_rest_still_arrive(tmp_path, queue_name):
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue(queue_name)
        # What kombu's own writer leaves behind when it dies between creating and writing.
        empty = tmp_path / "in" / f"00000000000000000001_broken.{queue_name}.msg"
        empty.write_bytes(b"")
        partial = tmp_path / "in" / f"00000000000000000002_broken.{queue_name}.msg"
        partial.write_bytes(b'{"body": "eyJ')
        old = time.time() - 60
        for path in (empty, partial):
            os.utime(path, (old, old))
        queue.put({"n": 1})
        message = queue.get(timeout=1)
        message.ack()
        assert message.payload == {"n": 1}
        queue.close()
    aside = sorted(os.listdir(tmp_path / "processed" / "unreadable"))
    assert aside == [
        f"00000000000000000001_broken.{queue_name}.msg",
        f"00000000000000000002_broken.{queue_name}.msg",
    ]
    assert os.listdir(tmp_path / "in") == []


def test_a_young_unreadable_file_is_left_for_a_later_try(tmp_path, queue_name):
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue(queue_name)
        young = tmp_path / "in" / f"00000000000000000001_young.{queue_name}.msg"
        young.write_bytes(b"")  # a writer of the old kind may still be writing it
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
        queue.close()
    assert young.exists()


@pytest.mark.slow
def test_a_worker_survives_a_burst_of_10000_messages_and_runs_each_once(tmp_path):
    var_dir = tmp_path / "var"
    env = embedded_env(var_dir)
    run_python(["manage.py", "migrate", "--noinput", "-v", "0"], env)
    deliveries = tmp_path / "deliveries.txt"
    deliveries.touch()
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pickwise", "worker", "-I", "tests.broker_probe"]
            + ["-Q", "default,generate,train", "-c", "1", "--pool=solo", "-l", "WARNING"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        each = BURST // PRODUCERS
        producers = [
            subprocess.Popen(
                [sys.executable, "-c", _PRODUCE, str(deliveries), str(i * each), str(each)],
                cwd=ROOT,
                env=env,
            )
            for i in range(PRODUCERS)
        ]
        for producer in producers:
            assert producer.wait(timeout=WAIT_SECONDS) == 0

        deadline = time.monotonic() + WAIT_SECONDS
        while len(deliveries.read_text().splitlines()) < BURST:
            assert worker.poll() is None, f"the worker died:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"stalled:\n{log_path.read_text()[-3000:]}"
            time.sleep(1)
        time.sleep(2)  # anything delivered twice would arrive now
        numbers = [int(line) for line in deliveries.read_text().splitlines()]
        assert len(numbers) == BURST and set(numbers) == set(range(BURST))
        assert worker.poll() is None
        assert "JSONDecodeError" not in log_path.read_text()
        assert os.listdir(var_dir / "broker" / "in") == []
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_the_celery_app_uses_this_transport_for_filesystem_urls_only():
    from pickwise.broker import Transport
    from pickwise.celery import app

    assert type(Connection("filesystem://").transport) is Transport
    assert app.connection_for_write("redis://127.0.0.1:1/0").transport.driver_type == "redis"
