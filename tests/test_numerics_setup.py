"""The switches scripts/test-numerics.sh turns: torch's thread count and CPU capability."""

import os

import pytest

from tests.conftest import torch_threads_for_tests


@pytest.mark.numerics
def test_torch_runs_with_the_thread_count_the_tests_are_given():
    torch = pytest.importorskip("torch")
    assert torch.get_num_threads() == torch_threads_for_tests()
    assert os.environ["OMP_NUM_THREADS"] == str(torch_threads_for_tests())


@pytest.mark.numerics
def test_a_forced_cpu_capability_is_the_one_torch_runs_with():
    torch = pytest.importorskip("torch")
    forced = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if not forced:
        pytest.skip("ATEN_CPU_CAPABILITY is not set: torch takes the machine's best")
    assert torch.backends.cpu.get_cpu_capability().lower() == forced


def test_a_malformed_thread_count_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("PICKWISE_TEST_TORCH_THREADS", "two")
    with pytest.raises(pytest.UsageError, match="PICKWISE_TEST_TORCH_THREADS must be a whole"):
        torch_threads_for_tests()
    monkeypatch.setenv("PICKWISE_TEST_TORCH_THREADS", "0")
    with pytest.raises(pytest.UsageError, match="got '0'"):
        torch_threads_for_tests()
    monkeypatch.setenv("PICKWISE_TEST_TORCH_THREADS", " ")
    assert torch_threads_for_tests() == 1
    monkeypatch.setenv("PICKWISE_TEST_TORCH_THREADS", "2")
    assert torch_threads_for_tests() == 2
