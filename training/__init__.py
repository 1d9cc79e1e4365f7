"""Training: the Diffusion-DPO / MaPO trainer (standalone, runnable without Django).

Nothing here is imported by the web process; torch and diffusers are imported by the trainer
modules themselves (``training.dpo`` and its helpers).
"""
