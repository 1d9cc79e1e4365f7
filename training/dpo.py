"""``python -m training.dpo``: the trainer's command line at its documented path.

The trainer itself lives in ``training/trainer/`` (the loop in ``training.trainer.dpo``); this
module only runs it, so scripts, ``accelerate launch -m training.dpo`` and the job runner keep
one stable name.
"""

import sys

from training.trainer.dpo import DPOConfig, TrainResult, build_parser, cli, main

__all__ = ["DPOConfig", "TrainResult", "build_parser", "cli", "main"]

if __name__ == "__main__":
    sys.exit(cli())
