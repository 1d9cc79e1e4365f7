"""Writes for training: starting and recovering jobs (jobs.py), a run's claim, progress and end
(runs.py, used by the runner on the worker) and the evaluation loop (evaluation.py)."""
