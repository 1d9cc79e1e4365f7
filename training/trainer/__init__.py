"""The standalone Diffusion-DPO / MaPO / RankDPO trainer, runnable on any GPU box without Django.

    python -m training.dpo --data EXPORT_DIR --pretrained MODEL_DIR --output OUT_DIR ...

One module per concern: ``config`` (``DPOConfig``, every option with its default, help and
constraints, torch-free, the single source the web side derives its options from), ``data``
(export files to batches), ``losses`` (the preference losses as pure functions), ``step``
(the UNet step that feeds them), ``monitoring``, ``checkpoints`` and ``metrics_file`` (the
progress file the job runner reads), and ``dpo``, the loop. Nothing here imports Django, an
app or training's job side (models, services, selectors, tasks, runner): an import-linter
contract in pyproject.toml holds that.
"""
