"""Writes for generation: starting jobs (jobs.py), running batches on a worker (batches.py),
finishing prompts and jobs (completion.py) and recovering from dead workers (recovery.py)."""
