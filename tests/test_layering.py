"""The layering of docs/architecture.md, held by import-linter and by the web process's imports.

`make test` (and so CI) runs these; `make lint` runs the same contracts with `lint-imports`.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")

# Libraries the web process must not load: GPU work happens in Celery tasks and the trainer,
# and evalica (with scipy and pandas behind it) only when a leaderboard is fitted.
NOT_IN_THE_WEB_PROCESS = ("torch", "diffusers", "transformers", "evalica", "scipy", "pandas")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    # No cache: concurrent runs must not share one, and a fresh graph takes about a second.
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_code_keeps_every_import_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def copy_of_the_apps(tmp_path: Path) -> Path:
    for app in CONFIG["root_packages"]:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_an_import_up_the_layers_breaks_the_lint(tmp_path):
    tree = copy_of_the_apps(tmp_path)
    (tree / "annotate" / "upward.py").write_text("from frontend import views  # noqa: F401\n")

    done = lint_imports(tree)

    assert done.returncode != 0
    assert "annotate.upward -> frontend.views" in done.stdout


def test_a_trainer_module_importing_django_breaks_the_lint(tmp_path):
    tree = copy_of_the_apps(tmp_path)
    losses = tree / "training" / "trainer" / "losses.py"
    losses.write_text(losses.read_text() + "\nfrom django.conf import settings  # noqa: E402\n")

    done = lint_imports(tree)

    assert done.returncode != 0
    # The contract names the package: the report names it and the module that broke it.
    assert "training.trainer is not allowed to import django" in done.stdout
    assert "training.trainer.losses -> django" in done.stdout


def test_a_rule_importing_a_quality_write_breaks_the_lint(tmp_path):
    tree = copy_of_the_apps(tmp_path)
    rules = tree / "annotate" / "quality" / "rules.py"
    rules.write_text(rules.read_text() + "\nfrom annotate.quality import gating  # noqa: E402\n")

    done = lint_imports(tree)

    assert done.returncode != 0
    assert "annotate.quality.rules -> annotate.quality.gating" in done.stdout


def test_the_trainer_package_and_its_entry_are_under_the_no_django_contract():
    trainer = next(c for c in CONFIG["contracts"] if c["name"].startswith("The standalone trainer"))
    # The contract names the package, which covers every module in it (import-linter treats
    # source modules as packages); no trainer module may sit beside the job side any more.
    assert {"training.trainer", "training.dpo"} <= set(trainer["source_modules"])
    assert trainer.get("as_packages", True)
    assert len(list((ROOT / "training" / "trainer").glob("*.py"))) > 5
    assert [path.name for path in (ROOT / "training").glob("dpo*.py")] == ["dpo.py"]


def test_every_app_of_the_project_has_its_place_in_the_layers():
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    layers = next(c for c in CONFIG["contracts"] if c["type"] == "layers")["layers"]
    layered = {name.strip() for layer in layers for name in layer.split("|")}
    assert apps <= set(CONFIG["root_packages"]), "add the new app to [tool.importlinter]"
    assert set(CONFIG["root_packages"]) == layered


def test_the_url_conf_loads_no_gpu_or_statistics_library():
    code = (
        "import json, sys, django\n"
        "django.setup()\n"
        "import pickwise.urls\n"
        f"print(json.dumps([m for m in {NOT_IN_THE_WEB_PROCESS!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pickwise.settings", "PICKWISE_TESTING": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
