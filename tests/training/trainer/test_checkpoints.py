import pytest

pytest.importorskip("torch")

from training.trainer.checkpoints import (  # noqa: E402
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    resolve_resume,
    write_checkpoint,
)


def _write(marker: str):
    def write(folder):
        (folder / "marker.txt").write_text(marker)

    return write


def test_it_publishes_a_checkpoint_and_points_latest_at_it(tmp_path):
    folder = write_checkpoint(output_dir=tmp_path, step=5, write=_write("a"), total_limit=None)
    assert folder.name == "step-5"
    assert latest_checkpoint(tmp_path) == folder
    assert (folder / "marker.txt").read_text() == "a"


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temporary_folder(tmp_path):
    write_checkpoint(output_dir=tmp_path, step=1, write=_write("a"), total_limit=None)

    def broken(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(output_dir=tmp_path, step=2, write=broken, total_limit=None)
    assert latest_checkpoint(tmp_path).name == "step-1"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-1"]


def test_it_keeps_only_the_newest_checkpoints_within_the_limit(tmp_path):
    for step in (2, 4, 6, 8):
        write_checkpoint(output_dir=tmp_path, step=step, write=_write(str(step)), total_limit=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [6, 8]
    assert latest_checkpoint(tmp_path).name == "step-8"


def test_rewriting_a_step_replaces_it(tmp_path):
    write_checkpoint(output_dir=tmp_path, step=3, write=_write("old"), total_limit=None)
    folder = write_checkpoint(output_dir=tmp_path, step=3, write=_write("new"), total_limit=None)
    assert (folder / "marker.txt").read_text() == "new"


def test_resume_modes(tmp_path):
    assert resolve_resume(tmp_path, "auto") is None
    folder = write_checkpoint(output_dir=tmp_path, step=1, write=_write("a"), total_limit=None)
    assert resolve_resume(tmp_path, "auto") == folder
    assert resolve_resume(tmp_path, "never") is None
    assert resolve_resume(tmp_path, str(folder)) == folder
    with pytest.raises(CheckpointError, match="not found"):
        resolve_resume(tmp_path, str(tmp_path / "nope"))
    (tmp_path / "checkpoints" / "latest").write_text("step-9\n")
    with pytest.raises(CheckpointError, match="names step-9, which does not exist"):
        resolve_resume(tmp_path, "auto")
