"""Production settings from the environment: HTTPS, HSTS, the proxy's scheme header, password
rules, and the health endpoint that checks the database and the broker."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import connections

from pickwise.celery import app as celery_app
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json
from django.conf import settings
print(json.dumps({
    "redirect": settings.SECURE_SSL_REDIRECT,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "subdomains": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "preload": settings.SECURE_HSTS_PRELOAD,
    "proxy": settings.SECURE_PROXY_SSL_HEADER,
    "validators": [v["NAME"].rsplit(".", 1)[-1] for v in settings.AUTH_PASSWORD_VALIDATORS],
}))
"""


def _load(tmp_path, **env) -> subprocess.CompletedProcess:
    child_env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "pickwise.settings",
        "PICKWISE_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "x" * 50,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_https_settings_are_off_unless_set_and_read_from_the_environment(tmp_path):
    default = json.loads(_load(tmp_path).stdout.splitlines()[-1])
    assert default["redirect"] is False and default["hsts"] == 0 and default["proxy"] is None
    assert default["validators"] == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    ]
    result = _load(
        tmp_path,
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto=https",
    )
    assert json.loads(result.stdout.splitlines()[-1]) | {"validators": None} == {
        "redirect": True,
        "hsts": 31536000,
        "subdomains": True,
        "preload": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "validators": None,
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
        ("SECURE_PROXY_SSL_HEADER", "=https"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("SECURE_HSTS_SECONDS", "a year"),
    ],
)
def test_malformed_https_settings_stop_start_up(tmp_path, name, value):
    result = _load(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr or "ValueError" in result.stderr


@pytest.mark.django_db
def test_plain_http_is_redirected_and_https_gets_hsts(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=3600"


@pytest.mark.django_db
def test_without_the_proxy_setting_a_client_cannot_claim_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password", ["12345678901234", "short1!", "password123", "alice.cooper-x", "cooperalice1"]
)
def test_weak_passwords_are_refused(password):
    user = UserFactory(username="alice.cooper", email="alice.cooper@example.org")
    user.first_name, user.last_name = "Alice", "Cooper"
    with pytest.raises(ValidationError):
        validate_password(password, user=user)


@pytest.mark.django_db
def test_a_strong_password_passes():
    user = UserFactory(username="alice.cooper")
    validate_password("violet-harbour-71-tundra", user=user)


# Health ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_answers_ok_with_the_database_and_broker_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_healthz_answers_before_host_checks_and_the_https_redirect(client, settings):
    settings.ALLOWED_HOSTS = ["pickwise.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.fixture
def broker_down(monkeypatch):
    # A port nothing listens on: the broker is really unreachable. (Celery prefers the
    # CELERY_BROKER_URL environment variable over its configuration, so both change.)
    down = "redis://127.0.0.1:1/0"
    saved = celery_app.conf.broker_url
    monkeypatch.setenv("CELERY_BROKER_URL", down)
    celery_app.conf.broker_url = down
    assert celery_app.connection_for_write().as_uri().endswith("@127.0.0.1:1/0")
    yield
    celery_app.conf.broker_url = saved


@pytest.mark.django_db
def test_healthz_is_503_naming_the_broker_when_it_is_down(client, broker_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "failed"}


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_naming_the_database_when_it_is_down(client):
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict["PORT"] = "1"
    else:
        connection.settings_dict["NAME"] = "/nonexistent/folder/pickwise.sqlite3"
    try:
        response = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "failed", "broker": "ok"}
