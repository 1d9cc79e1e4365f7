import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_reward_scorers():
    # Scorers are cached per process by folder; each test sees the settings it sets.
    from generation.services import batches

    batches._scorers.clear()
    yield
    batches._scorers.clear()
