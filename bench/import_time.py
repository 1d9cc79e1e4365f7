"""Start-up cost of the web process: `import pickwise.urls` in fresh interpreters.

Usage: .venv/bin/python bench/import_time.py [--runs 5]

Each run is a new subprocess (nothing cached in memory) that sets up Django and imports the
URL conf, the modules every web, worker and test process loads. Prints each run's wall time
of the whole subprocess and of the import alone, then the best of the runs, and the heavy
libraries that ended up in sys.modules.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "diffusers", "transformers", "evalica", "scipy", "pandas", "pyarrow", "numpy")

CHILD = """
import json, sys, time
start = time.perf_counter()
import django
django.setup()
import pickwise.urls
took = time.perf_counter() - start
print(json.dumps({"import_s": took, "loaded": [m for m in HEAVY if m in sys.modules],
                  "modules": len(sys.modules)}))
"""


def one_run() -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pickwise.settings", "DEBUG": "1"}
    code = f"HEAVY = {HEAVY!r}\n{CHILD}"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    for number, run in enumerate(runs, 1):
        print(f"run {number}: process {run['process_s']:.2f} s, import {run['import_s']:.2f} s")
    print(f"best process: {min(r['process_s'] for r in runs):.2f} s")
    print(f"best import:  {min(r['import_s'] for r in runs):.2f} s")
    print(f"modules loaded: {runs[-1]['modules']}")
    print(f"heavy libraries loaded: {', '.join(runs[-1]['loaded']) or 'none'}")


if __name__ == "__main__":
    main()
