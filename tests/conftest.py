"""Shared fixtures. Keep this small: most set-up lives in tests/factories.py."""

import tempfile
from pathlib import Path

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _isolated_media_and_throttles(settings, tmp_path):
    # Each test writes media and kept uploads under its own folders, and starts with empty rate-limit counters.
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_ROOT = tmp_path / "imports"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _model_folders_in_temp(settings):
    # Tests write their tiny pipelines to temporary folders; the server only accepts model
    # folders under PICKWISE_MODEL_ROOTS (tests/test_model_folders.py narrows this again).
    settings.PICKWISE_MODEL_ROOTS = [*settings.PICKWISE_MODEL_ROOTS, Path(tempfile.gettempdir())]


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
