"""The embedded default under a crowd: 50 annotators at once against `make run`'s server
(scripts/run-embedded.sh: gunicorn on SQLite, the worker on the filesystem broker) get no
5xx, and every acknowledged submit is stored once. bench/embedded_load.py runs the same
with 200 annotators (figures in bench/RESULTS.md)."""

import pytest

from bench.embedded_load import run

pytestmark = pytest.mark.slow


def test_fifty_annotators_at_once_get_no_server_error_and_lose_nothing(tmp_path):
    figures = run(annotators=50, seconds=20, think_ms=500, prompts=100, var_dir=tmp_path / "var")

    assert figures["5xx"] == 0, figures
    assert figures["connection failures"] == {}, figures
    assert figures["'database is locked' in the server log"] == 0, figures
    assert figures["worker alive until stopped"], figures
    assert figures["acknowledged"] > 50, figures  # the crowd did work
    assert figures["acknowledged but missing"] == 0, figures
    assert figures["acknowledged twice"] == 0, figures
    assert figures["annotator twice on a comparison"] == 0, figures
    assert figures["judgments stored"] == figures["acknowledged"], figures
