"""Failed-login throttling per account and per client address.

Every password check (the login page, the admin login, the token endpoint) goes through
`ThrottledModelBackend`, which counts failures in the cache under the account and under the
client's address. Once either count reaches its limit, further attempts are refused without
checking the password, the right one included, until the window (started by the first
failure) runs out. With several web processes the counts must live in a shared cache
(CACHE_URL); the per-process default gives each process its own counts.

The client's address is REMOTE_ADDR unless PICKWISE_TRUSTED_PROXIES says how many proxies
in front of the app append to X-Forwarded-For; a header the client sends itself is never
trusted otherwise.
"""

import hashlib

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

LOGIN_LOCKED = (
    "Too many failed logins for this account or from this address; try again in {minutes} minutes."
)


def client_address(request) -> str:
    """The client's address: the entry the last trusted proxy appended, else REMOTE_ADDR.

    The same rule as DRF's throttles with NUM_PROXIES (settings sets it to the same number).
    """
    proxies = settings.PICKWISE_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxies, len(hops))]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(*, request, username) -> tuple[str, str]:
    account = hashlib.sha256(str(username or "").strip().lower().encode()).hexdigest()
    address = client_address(request) if request is not None else "unknown"
    return f"pickwise:login-fail:account:{account}", f"pickwise:login-fail:address:{address}"


def login_locked(*, request, username) -> bool:
    """True when the account or the client's address has used up its failed attempts."""
    account_key, address_key = _keys(request=request, username=username)
    counts = cache.get_many([account_key, address_key])
    return (
        counts.get(account_key, 0) >= settings.PICKWISE_LOGIN_FAILURES_PER_ACCOUNT
        or counts.get(address_key, 0) >= settings.PICKWISE_LOGIN_FAILURES_PER_ADDRESS
    )


def login_failure_record(*, request, username) -> None:
    for key in _keys(request=request, username=username):
        # add() starts the window at the first failure; incr() never extends it.
        cache.add(key, 0, settings.PICKWISE_LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, settings.PICKWISE_LOGIN_LOCKOUT_SECONDS)


def login_locked_message() -> str:
    return LOGIN_LOCKED.format(minutes=max(1, -(-settings.PICKWISE_LOGIN_LOCKOUT_SECONDS // 60)))


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that refuses locked accounts and addresses and counts failures."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get("username")
        if login_locked(request=request, username=username):
            # PermissionDenied stops authenticate() from trying any other backend.
            raise PermissionDenied(login_locked_message())
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            login_failure_record(request=request, username=username)
        else:
            # The account's own count starts again; the address's does not (one valid
            # account must not let an address go on guessing others).
            cache.delete(_keys(request=request, username=username)[0])
        return user


class _LockedMessageMixin:
    """Says the login is locked instead of 'wrong password' (the backend refuses anyway)."""

    def clean(self):
        if login_locked(request=self.request, username=self.data.get("username")):
            raise forms.ValidationError(login_locked_message(), code="throttled")
        return super().clean()


class ThrottledAuthenticationForm(_LockedMessageMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(_LockedMessageMixin, AdminAuthenticationForm):
    pass
