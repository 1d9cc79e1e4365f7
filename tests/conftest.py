"""Shared fixtures. Keep this small: most set-up lives in tests/factories.py."""

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _isolated_media_and_throttles(settings, tmp_path):
    # Each test writes media under its own folder, and starts with empty rate-limit counters.
    settings.MEDIA_ROOT = tmp_path / "media"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
