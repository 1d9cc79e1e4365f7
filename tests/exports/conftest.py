import pytest


@pytest.fixture(autouse=True)
def _exports_in_tmp(settings, tmp_path):
    # Each test writes its exports under its own folder.
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.PUBLIC_BASE_URL = ""
