"""Training: training jobs (the Django side) and the standalone trainer (``training/trainer/``).

The job side (models, services, selectors, apis, tasks, runner, options) starts, follows and
evaluates jobs; it runs the trainer as a subprocess, ``python -m training.dpo`` (a thin module
over ``training.trainer.dpo``). The trainer imports no Django; nothing here is imported by the
web process that loads torch or diffusers.
"""
