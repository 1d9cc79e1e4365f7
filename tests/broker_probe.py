"""A task for broker tests, loaded into a test worker with `celery worker --include`: it
records each delivery as one line appended to a file."""

from celery import shared_task


@shared_task(name="tests.broker_probe.record", ignore_result=True)
def record(path: str, number: int) -> None:
    with open(path, "a") as out:  # one short append per line: lines never interleave
        out.write(f"{number}\n")
