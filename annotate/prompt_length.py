"""The one length rule for prompts, and a cheap guess at where a text encoder cuts them.

MAX_PROMPT_CHARS applies to every way a prompt comes in (the prompts page, the API, the
Django admin, prompt files and image imports) and is held by a database check as well.

CLIP's text encoder (Stable Diffusion 1.x/2.x, the first encoder of SDXL) reads 77 tokens,
two of them the start and end markers, and silently drops the rest. clip_tokens_estimate
counts tokens the way CLIP's pre-tokenizer splits text (runs of letters, single digits, runs
of other symbols) and charges a letter run one token per started 6 letters after its first, a
stand-in for byte-pair merges: common English words are one token, long or rare words
several. It loads no tokenizer and runs in microseconds; on English prompts it tends to
overcount a little, so a warning comes slightly early rather than late.
"""

import re

MAX_PROMPT_CHARS = 2000
CLIP_MAX_TOKENS = 77
CLIP_SPECIAL_TOKENS = 2  # start and end of text
_PIECES = re.compile(r"'(?:s|t|re|ve|m|ll|d)|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


def clip_tokens_estimate(text: str) -> int:
    """About how many CLIP tokens `text` takes, start and end markers included."""
    count = CLIP_SPECIAL_TOKENS
    for piece in _PIECES.findall(text.lower()):
        if piece[0].isalpha():
            count += 1 + (len(piece) - 1) // 6
        else:
            count += 1
    return count


def clip_truncates(text: str) -> bool:
    return clip_tokens_estimate(text) > CLIP_MAX_TOKENS
