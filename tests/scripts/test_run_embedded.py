"""scripts/run-embedded.sh keeps the whole log when `make run` is redirected to one file.

The script runs for real against stub `python`, `gunicorn` and `celery` programs (BIN points at
them): seed_demo prints two lines, the web server exits at once, so the script prints its banner,
notices the web server stopped, stops the worker and exits 1.
"""

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_STUB_PYTHON = """#!/usr/bin/env bash
case "$*" in
  "manage.py help seed_demo") exit 0 ;;
  "manage.py seed_demo") echo "Seeding the demo campaign"; echo "Demo logins: admin / secret" ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

# The web server: gunicorn with the WSGI app, as `make run` serves it.
_STUB_GUNICORN = """#!/usr/bin/env bash
case "$1" in
  pickwise.wsgi:application) exit 0 ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

_STUB_CELERY = """#!/usr/bin/env bash
exec sleep 60
"""


def _stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_output_written_before_the_script_survives_a_redirect_of_both_streams_to_one_file(
    tmp_path,
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir / "python", _STUB_PYTHON)
    _stub(bin_dir / "gunicorn", _STUB_GUNICORN)
    _stub(bin_dir / "celery", _STUB_CELERY)
    log = tmp_path / "run.log"
    # What `make run > run.log 2>&1` does: install and migrate write first, then the script.
    command = (
        'echo "Successfully installed pickwise"; echo "Applying annotate.0001_initial... OK" >&2;'
        " scripts/run-embedded.sh"
    )
    env = {**os.environ, "BIN": str(bin_dir), "PICKWISE_VAR_DIR": str(tmp_path / "var")}
    with log.open("w") as out:
        result = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=out, timeout=60
        )
    text = log.read_text()
    assert result.returncode == 1, text
    lines = [
        "Successfully installed pickwise",
        "Applying annotate.0001_initial... OK",
        "Seeding the demo campaign",
        "Demo logins: admin / secret",
        "Pickwise is running at http://127.0.0.1:8000/",
        "The web server stopped.",
    ]
    positions = [text.find(line) for line in lines]
    assert -1 not in positions, text
    assert positions == sorted(positions), text
    assert text.count("Demo logins: admin / secret") == 2, text  # as seeded, and in the banner
