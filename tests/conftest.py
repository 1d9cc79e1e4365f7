"""Shared fixtures. Keep this small: most set-up lives in tests/factories.py."""

import os
import sys
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


def torch_threads_for_tests() -> int:
    """PICKWISE_TEST_TORCH_THREADS (scripts/test-numerics.sh runs the numerical tests with 1 and
    with 2), else 1."""
    value = os.environ.get("PICKWISE_TEST_TORCH_THREADS", "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(
            f"PICKWISE_TEST_TORCH_THREADS must be a whole number >= 1, got {value!r}."
        )
    return int(value)


# One torch thread unless told otherwise: on a small shared machine OpenMP threads spin-waiting
# for each other make the tiny models several times slower (the generation tests took 180 s with
# 2 threads and 36 s with 1 on two busy cores). Set before anything imports torch, so it holds
# here and in the workers, trainers and servers the tests start.
os.environ["OMP_NUM_THREADS"] = str(torch_threads_for_tests())
# ATen's portable kernels (ATEN_CPU_CAPABILITY=default) cannot use the AVX-512/AMX packing that
# oneDNN offers on a processor that has it ("pack_vnni2 is only supported when avx512 is
# supported" in bfloat16 attention), a mix no real processor runs: lower oneDNN with them.
if os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() == "default":
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


@pytest.fixture(autouse=True)
def _torch_threads():
    # For a torch imported before this file set OMP_NUM_THREADS; torch is not imported here,
    # which would slow collection and every Django test by seconds.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(torch_threads_for_tests())


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
