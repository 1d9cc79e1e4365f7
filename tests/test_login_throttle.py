"""Failed logins are limited per account and per client address, on every login path."""

import time

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import RequestFactory

from pickwise.login_throttle import client_address, login_locked_message
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # UserFactory's
PAGES = {"login page": "/accounts/login/", "admin login": "/admin/login/"}


@pytest.fixture(autouse=True)
def _small_limits(settings):
    # Many password checks per test: a fast hasher (set before any user is made).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PICKWISE_LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.PICKWISE_LOGIN_FAILURES_PER_ADDRESS = 12
    settings.PICKWISE_LOGIN_LOCKOUT_SECONDS = 900


def _page_login(client, path, username, password, **headers):
    return client.post(path, {"username": username, "password": password}, **headers)


@pytest.mark.parametrize("path", PAGES.values(), ids=PAGES.keys())
def test_the_right_password_is_refused_after_too_many_wrong_ones(client, path):
    UserFactory(username="victim", is_staff=True, is_superuser=True)
    for _ in range(25):
        _page_login(client, path, "victim", "wrong")
    response = _page_login(client, path, "victim", PASSWORD)
    assert response.status_code == 200  # the form again, not a redirect
    assert SESSION_KEY not in client.session
    assert login_locked_message() in response.content.decode()


@pytest.mark.parametrize("path", PAGES.values(), ids=PAGES.keys())
def test_a_few_wrong_passwords_do_not_lock_the_account(client, path):
    UserFactory(username="typo", is_staff=True, is_superuser=True)
    for _ in range(4):
        _page_login(client, path, "typo", "wrong")
    response = _page_login(client, path, "typo", PASSWORD)
    assert response.status_code == 302
    assert SESSION_KEY in client.session


def test_a_successful_login_starts_the_accounts_count_again(client):
    UserFactory(username="typo")
    for _ in range(4):
        _page_login(client, "/accounts/login/", "typo", "wrong")
    _page_login(client, "/accounts/login/", "typo", PASSWORD)
    assert SESSION_KEY in client.session
    client.logout()
    for _ in range(4):
        _page_login(client, "/accounts/login/", "typo", "wrong")
    _page_login(client, "/accounts/login/", "typo", PASSWORD)
    assert SESSION_KEY in client.session


def test_the_account_lock_holds_from_every_address_and_case(client):
    UserFactory(username="victim")
    for n in range(5):
        _page_login(client, "/accounts/login/", "victim", "wrong", REMOTE_ADDR=f"10.0.0.{n}")
    response = _page_login(client, "/accounts/login/", "VICTIM ", PASSWORD, REMOTE_ADDR="10.9.9.9")
    assert SESSION_KEY not in client.session
    assert login_locked_message() in response.content.decode()


def test_one_address_trying_many_accounts_is_locked_out(client):
    UserFactory(username="real")
    for n in range(12):
        _page_login(client, "/accounts/login/", f"guess{n}", "wrong", REMOTE_ADDR="192.0.2.7")
    _page_login(client, "/accounts/login/", "real", PASSWORD, REMOTE_ADDR="192.0.2.7")
    assert SESSION_KEY not in client.session
    # Another client is not affected.
    _page_login(client, "/accounts/login/", "real", PASSWORD, REMOTE_ADDR="192.0.2.8")
    assert SESSION_KEY in client.session


def test_the_lock_ends_with_its_window(client, settings):
    settings.PICKWISE_LOGIN_LOCKOUT_SECONDS = 2
    UserFactory(username="victim")
    for _ in range(5):
        _page_login(client, "/accounts/login/", "victim", "wrong")
    _page_login(client, "/accounts/login/", "victim", PASSWORD)
    assert SESSION_KEY not in client.session
    time.sleep(2.2)
    _page_login(client, "/accounts/login/", "victim", PASSWORD)
    assert SESSION_KEY in client.session


def test_the_token_endpoint_locks_the_account_with_a_429(api_client):
    UserFactory(username="scripter")
    for _ in range(5):
        api_client.post(
            "/api/auth/token/", {"username": "scripter", "password": "x"}, format="json"
        )
    response = api_client.post(
        "/api/auth/token/", {"username": "scripter", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 429
    assert response.json() == {"detail": login_locked_message(), "code": "throttled"}


def test_a_forged_forwarded_for_header_does_not_reset_the_token_throttle(api_client, settings):
    # No trusted proxy: each request claims a fresh address, and different accounts, so only
    # the request throttle (THROTTLE_AUTH, 20/min) can stop them, keyed on REMOTE_ADDR.
    settings.PICKWISE_LOGIN_FAILURES_PER_ADDRESS = 1000
    statuses = [
        api_client.post(
            "/api/auth/token/",
            {"username": f"user{n}", "password": "x"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        ).status_code
        for n in range(25)
    ]
    assert statuses[-1] == 429


def test_a_forged_forwarded_for_header_does_not_reset_the_failure_count(client):
    UserFactory(username="real")
    for n in range(12):
        _page_login(
            client, "/accounts/login/", f"g{n}", "x", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
        )
    _page_login(client, "/accounts/login/", "real", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert SESSION_KEY not in client.session


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "1.1.1.1", "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, "1.1.1.1", "1.1.1.1"),
        (1, "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # the client's own prefix is not trusted
        (2, "6.6.6.6, 1.1.1.1, 172.16.0.2", "1.1.1.1"),
        (2, "1.1.1.1", "1.1.1.1"),
        (1, "", "10.0.0.1"),
    ],
)
def test_the_client_address_comes_from_the_trusted_proxies_only(
    settings, proxies, forwarded, expected
):
    settings.PICKWISE_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_behind_one_proxy_clients_are_counted_apart(client, settings):
    settings.PICKWISE_TRUSTED_PROXIES = 1
    UserFactory(username="real")
    for n in range(12):
        _page_login(client, "/accounts/login/", f"g{n}", "x", HTTP_X_FORWARDED_FOR="192.0.2.66")
    _page_login(client, "/accounts/login/", "real", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.66")
    assert SESSION_KEY not in client.session
    _page_login(client, "/accounts/login/", "real", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.67")
    assert SESSION_KEY in client.session
