"""Settings read from the environment, and the deployment files kept in step with them.

Each case imports pickwise.settings in a fresh interpreter with an environment built from
scratch, so the variables of this test run (CI exports DATABASE_URL) cannot leak in.
"""

import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Prints what the cases look at; runs in the child interpreter.
_PROBE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "host": db.get("HOST"),
    "port": db.get("PORT"),
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "options": db.get("OPTIONS", {}),
    "broker": settings.CELERY_BROKER_URL,
    "transport": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "media_root": str(settings.MEDIA_ROOT),
    "debug": settings.DEBUG,
    "secret_key": settings.SECRET_KEY,
}))
"""

# Variables the containers set for programs other than Django (gunicorn, Hugging Face).
_NOT_DJANGO_SETTINGS = {"WEB_CONCURRENCY", "WEB_THREADS", "HF_HOME", "HF_HUB_OFFLINE"}


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import the settings in a child process with only PATH, a var dir and `env` set."""
    child_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PICKWISE_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def settings_variables() -> set[str]:
    """Every environment variable pickwise/settings.py reads through django-environ."""
    source = (ROOT / "pickwise" / "settings.py").read_text()
    read = set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    # Renamed settings (pickwise/renamed_settings.py): the new name and the old one both read.
    return read | set(re.findall(r"\b(?:new|old)=\"([A-Z][A-Z0-9_]*)\"", source))


def test_with_no_environment_it_runs_on_sqlite_in_var_and_the_filesystem_broker(tmp_path):
    values = loaded(load_settings(tmp_path, DEBUG="1"))
    var = tmp_path / "var"

    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(var / "pickwise.sqlite3")
    assert "journal_mode=WAL" in values["options"]["init_command"]
    assert values["options"]["transaction_mode"] == "IMMEDIATE"
    assert values["broker"] == "filesystem://"
    assert values["transport"]["data_folder_in"] == str(var / "broker" / "in")
    assert (var / "broker" / "in").is_dir()
    assert values["media_root"] == str(var / "media")


def test_empty_urls_count_as_unset(tmp_path):
    values = loaded(load_settings(tmp_path, DEBUG="1", DATABASE_URL="", CELERY_BROKER_URL=""))

    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["broker"] == "filesystem://"


def test_database_url_switches_to_postgresql(tmp_path):
    url = "postgres://pickwise:secret@db.internal:5433/pickwise"
    values = loaded(load_settings(tmp_path, DEBUG="1", DATABASE_URL=url))

    assert values["engine"] == "django.db.backends.postgresql"
    assert (values["name"], values["host"], values["port"]) == ("pickwise", "db.internal", 5433)
    assert values["conn_max_age"] == 600
    assert "init_command" not in values["options"]


def test_celery_broker_url_switches_to_redis_without_touching_the_broker_folder(tmp_path):
    values = loaded(load_settings(tmp_path, DEBUG="1", CELERY_BROKER_URL="redis://cache:6379/0"))

    assert values["broker"] == "redis://cache:6379/0"
    # Above the longest GPU job, or Redis hands an unacknowledged task to a second worker.
    assert values["transport"]["visibility_timeout"] >= 3600
    assert not (tmp_path / "var" / "broker").exists()


def test_each_parallel_test_process_gets_its_own_filesystem_broker_folder(tmp_path):
    # pytest-xdist names its processes gw0, gw1, ...; the workers a test starts inherit the name.
    values = loaded(load_settings(tmp_path, DEBUG="1", PYTEST_XDIST_WORKER="gw1"))

    assert values["transport"]["data_folder_in"] == str(tmp_path / "var" / "broker-gw1" / "in")
    assert (tmp_path / "var" / "broker-gw1" / "control").is_dir()
    assert not (tmp_path / "var" / "broker").exists()


# The settings as a pytest process loads them (pytest imported first), with the broker URL that
# Celery will read from the environment.
_TEST_PROCESS_PROBE = "import pytest, os\n" + _PROBE.replace(
    '"broker": settings.CELERY_BROKER_URL,',
    '"broker": settings.CELERY_BROKER_URL, "env_broker": os.environ["CELERY_BROKER_URL"],',
)


@pytest.mark.parametrize(
    ("configured", "process", "expected"),
    [
        ("redis://127.0.0.1:6379/1", "gw0", "redis://127.0.0.1:6379/11"),
        ("redis://127.0.0.1:6379/1", "gw1", "redis://127.0.0.1:6379/12"),
        ("redis://:secret@cache:6379", "gw0", "redis://:secret@cache:6379/10"),
        ("redis://cache:6379/5", "gw1", "redis://cache:6379/0"),  # wraps inside Redis' 16
    ],
)
def test_each_parallel_test_process_gets_its_own_redis_database(
    tmp_path, configured, process, expected
):
    child_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PICKWISE_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "1",
        "CELERY_BROKER_URL": configured,
        "PYTEST_XDIST_WORKER": process,
    }
    run = subprocess.run(
        [sys.executable, "-c", _TEST_PROCESS_PROBE],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    values = loaded(run)
    assert (values["broker"], values["env_broker"]) == (expected, expected)

    # A worker that test process starts inherits the moved URL and keeps it as it is.
    inherited = loaded(
        load_settings(tmp_path, DEBUG="1", CELERY_BROKER_URL=expected, PYTEST_XDIST_WORKER=process)
    )
    assert inherited["broker"] == expected


def test_a_redis_broker_that_does_not_answer_holds_a_request_for_the_broker_timeout_at_most(
    tmp_path,
):
    values = loaded(
        load_settings(
            tmp_path, DEBUG="1", CELERY_BROKER_URL="redis://cache:6379/0", CELERY_BROKER_TIMEOUT="4"
        )
    )

    assert values["transport"]["socket_connect_timeout"] == 4
    assert values["transport"]["socket_timeout"] == 4


@pytest.mark.parametrize(
    "url",
    [
        "not-a-url",
        "nosuchdb://user:hunter2@host/pickwise",
        "postgres://user:hunter2@host:notaport/pickwise",
        "postgres://user:hunter2@host:5432/",
    ],
)
def test_a_malformed_database_url_raises_improperly_configured_without_echoing_it(tmp_path, url):
    result = load_settings(tmp_path, DEBUG="1", DATABASE_URL=url)

    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is malformed" in result.stderr
    assert "hunter2" not in result.stderr


def test_a_broker_url_without_a_scheme_raises_improperly_configured(tmp_path):
    result = load_settings(tmp_path, DEBUG="1", CELERY_BROKER_URL="redis-host")

    assert result.returncode != 0
    assert "ImproperlyConfigured: CELERY_BROKER_URL is malformed" in result.stderr


def test_a_missing_secret_key_with_debug_off_refuses_to_start(tmp_path):
    result = load_settings(tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_a_secret_key_with_debug_off_is_used_as_given(tmp_path):
    values = loaded(load_settings(tmp_path, SECRET_KEY="a-production-key"))

    assert values["debug"] is False
    assert values["secret_key"] == "a-production-key"


def test_the_readme_documents_every_variable_the_settings_read():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in settings_variables() if f"`{name}`" not in readme)

    assert settings_variables(), "no env reads found: the pattern no longer matches settings.py"
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_sets_only_variables_the_settings_read():
    known = settings_variables() | _NOT_DJANGO_SETTINGS
    for name, service in compose_services().items():
        if "build" not in service:
            continue  # postgres and redis: their own images' variables
        unknown = set(service.get("environment", {})) - known
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"


def test_compose_runs_the_production_services_on_postgresql_and_redis():
    services = compose_services()
    app = {name: s for name, s in services.items() if "build" in s}

    assert services["postgres"]["image"].startswith("postgres:15")
    assert set(app) == {"migrate", "web", "worker", "generate", "train", "beat"}
    for name, service in app.items():
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://"), name
        assert environment["CELERY_BROKER_URL"].startswith("redis://"), name
    for name in set(app) - {"migrate"}:
        condition = app[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    assert "gunicorn" in app["web"]["command"]


def test_compose_serves_with_the_gunicorn_settings_the_load_benchmark_measures():
    command = compose_services()["web"]["command"]
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert "--config=gunicorn.conf.py" in command
    # Sizes come from the file (or WEB_CONCURRENCY / WEB_THREADS), not from a second copy here.
    assert not [arg for arg in command if arg.startswith(("--workers", "--threads", "--worker"))]
    assert '"gunicorn.conf.py"' in (ROOT / "bench" / "annotate_load.py").read_text()
    assert conf["worker_class"] == "gthread"
    assert conf["wsgi_app"] == "pickwise.wsgi:application"


def test_the_cpu_worker_consumes_the_default_queue_without_a_gpu():
    service = compose_services()["worker"]
    command = service["command"]

    assert command[command.index("-Q") + 1] == "default"
    assert "deploy" not in service


@pytest.mark.parametrize("queue", ["generate", "train"])
def test_each_gpu_worker_consumes_its_queue_one_task_at_a_time_on_a_reserved_gpu(queue):
    service = compose_services()[queue]
    command = service["command"]

    assert command[command.index("-Q") + 1] == queue
    assert "--prefetch-multiplier=1" in command
    assert "--pool=solo" in command
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


def test_compose_builds_targets_the_dockerfile_defines():
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", (ROOT / "Dockerfile").read_text(), re.M))
    targets = {s["build"]["target"] for s in compose_services().values() if "build" in s}

    assert targets == {"web", "ml"}
    assert targets <= stages


# Prints the settings manage.py ends up with, through a real management command.
_MANAGE_PROBE = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"


def run_manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py in a child process with only PATH, a var dir and `env` set."""
    child_env = {"PATH": os.environ["PATH"], "PICKWISE_VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_runs_in_a_development_checkout_without_any_variable(tmp_path):
    result = run_manage(tmp_path, "shell", "-v", "0", "-c", _MANAGE_PROBE)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django-insecure-dev-only-key-never-use-in-production"]


def test_manage_py_migrates_and_creates_a_superuser_on_the_embedded_default(tmp_path):
    assert run_manage(tmp_path, "migrate", "--noinput").returncode == 0
    result = run_manage(
        tmp_path,
        "createsuperuser",
        "--noinput",
        "--username=admin",
        "--email=admin@example.org",
        DJANGO_SUPERUSER_PASSWORD="a-long-enough-password",
    )

    assert result.returncode == 0, result.stderr
    assert "Superuser created successfully." in result.stdout


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "0"},
        {"DEBUG": "false"},
        {"DATABASE_URL": "postgres://pickwise:secret@db.internal:5432/pickwise"},
    ],
    ids=["debug-0", "debug-false", "database-url"],
)
def test_manage_py_in_production_still_refuses_to_start_without_a_secret_key(tmp_path, env):
    result = run_manage(tmp_path, "check", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_manage_py_keeps_debug_off_with_a_database_url_and_a_secret_key(tmp_path):
    result = run_manage(
        tmp_path,
        "shell",
        "-v",
        "0",
        "-c",
        _MANAGE_PROBE,
        DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}",
        SECRET_KEY="a-production-key",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "a-production-key"]


def test_the_image_build_collects_static_files_with_debug_off():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (line,) = [
        line for line in dockerfile.splitlines() if line.startswith("RUN ") and "SECRET_KEY" in line
    ]

    assert "DEBUG=0" in line.split()


def test_a_renamed_setting_is_still_read_under_its_old_name_with_a_warning(tmp_path):
    probe = (
        "from django.conf import settings; import json; print(json.dumps(["
        "settings.PICKWISE_EXPORT_HEARTBEAT_TIMEOUT, settings.PICKWISE_EXPORT_MAX_ATTEMPTS, "
        "settings.PICKWISE_GENERATION_HEARTBEAT_TIMEOUT]))"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PICKWISE_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "1",
        "EXPORT_HEARTBEAT_TIMEOUT": "200",
        "EXPORT_MAX_ATTEMPTS": "4",
        "PICKWISE_GENERATION_CLAIM_TIMEOUT": "90",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [200, 4, 90]
    # Operators see it without any warnings filter of their own.
    for old, new in [
        ("EXPORT_HEARTBEAT_TIMEOUT", "PICKWISE_EXPORT_HEARTBEAT_TIMEOUT"),
        ("EXPORT_MAX_ATTEMPTS", "PICKWISE_EXPORT_MAX_ATTEMPTS"),
        ("PICKWISE_GENERATION_CLAIM_TIMEOUT", "PICKWISE_GENERATION_HEARTBEAT_TIMEOUT"),
    ]:
        assert f"The setting {old} is renamed {new}" in result.stderr
