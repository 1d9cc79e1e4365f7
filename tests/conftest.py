"""Shared fixtures. Keep this small: most set-up lives in tests/factories.py."""

import os
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


def torch_threads_for_tests() -> int | None:
    """PICKWISE_TEST_TORCH_THREADS, which scripts/test-numerics.sh sets to run the numerical
    tests with 1 and with 2 threads; None when unset."""
    value = os.environ.get("PICKWISE_TEST_TORCH_THREADS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(
            f"PICKWISE_TEST_TORCH_THREADS must be a whole number >= 1, got {value!r}."
        )
    return int(value)


@pytest.fixture(autouse=True)
def _torch_threads_from_environment():
    # torch is imported only when the variable is set: importing it for every Django test
    # would slow collection and the web tests by seconds.
    threads = torch_threads_for_tests()
    if threads is None:
        yield
        return
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
