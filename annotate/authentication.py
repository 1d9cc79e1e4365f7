"""Token authentication that remembers a token's user for a few seconds.

Every API request authenticates, and the token lookup (a join of the token and user tables)
was one database round trip of each next and submit. The user is cached under a hash of the
token for PICKWISE_TOKEN_CACHE_SECONDS. Revocation still takes effect: deleting a token (the
DELETE /api/auth/token/ endpoint, the admin, a user deleted) or deactivating a user drops the
cached entries at once in this process and in a shared cache (CACHE_URL); with the default
per-process cache, other web processes stop accepting the token when their entry expires.

The header may say `Token <key>` (DRF's word, kept for existing scripts) or `Bearer <key>`,
the HTTP scheme the OpenAPI schema declares and client generators send by default.
"""

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_cache_key(key: str) -> str:
    # A digest, so raw tokens never appear as cache keys (in Redis, for instance).
    return "pickwise:token:" + hashlib.sha256(key.encode()).hexdigest()


KEYWORDS = (b"token", b"bearer")
MALFORMED_HEADER = "Invalid token header: expected 'Bearer <token>' or 'Token <token>'."


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # another scheme: let the next authenticator try
        if len(parts) != 2:
            raise AuthenticationFailed(MALFORMED_HEADER)
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise AuthenticationFailed(MALFORMED_HEADER) from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key):
        cache_key = token_cache_key(key)
        user = cache.get(cache_key)
        if user is not None:
            return user, Token(key=key, user=user)
        user, token = super().authenticate_credentials(key)
        cache.set(cache_key, user, settings.PICKWISE_TOKEN_CACHE_SECONDS)
        return user, token


def token_forget(*, keys: list[str]) -> None:
    """Drop cached lookups of these tokens, so they stop authenticating now."""
    cache.delete_many([token_cache_key(key) for key in keys])


def _forget_deleted_token(sender, instance: Token, **kwargs) -> None:
    token_forget(keys=[instance.key])


def _forget_inactive_users_tokens(sender, instance, **kwargs) -> None:
    if not instance.is_active:
        token_forget(keys=list(Token.objects.filter(user=instance).values_list("key", flat=True)))


def connect_signals() -> None:
    post_delete.connect(_forget_deleted_token, sender=Token, dispatch_uid="token_forget")
    post_save.connect(
        _forget_inactive_users_tokens, sender=get_user_model(), dispatch_uid="token_forget_user"
    )
