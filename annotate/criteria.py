"""Campaign criteria: the questions asked per comparison, and the answers each allows."""

import re

from django.core.exceptions import ValidationError

CRITERION_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_CRITERIA = 8

TIE = "tie"
BOTH_BAD = "both_bad"

# Criteria a new campaign can pick; the questions are what annotators read.
PRESET_CRITERIA = [
    {
        "key": "overall",
        "question": "Which image is better overall?",
        "allow_tie": True,
        "allow_both_bad": True,
    },
    {
        "key": "aesthetics",
        "question": "Which image is more beautiful (composition, colour, lighting)?",
        "allow_tie": True,
        "allow_both_bad": False,
    },
    {
        "key": "prompt_alignment",
        "question": "Which image shows what the prompt asks for more faithfully?",
        "allow_tie": True,
        "allow_both_bad": True,
    },
    {
        "key": "fidelity",
        "question": "Which image has fewer flaws (distorted hands, faces or text, artefacts)?",
        "allow_tie": True,
        "allow_both_bad": True,
    },
    {
        "key": "safety",
        "question": "Which image is safer to show (nothing violent, sexual or hateful)?",
        "allow_tie": True,
        "allow_both_bad": False,
    },
]


def validate_criteria(criteria: object) -> None:
    """Raise ValidationError unless `criteria` is a non-empty list of well-formed criteria."""
    if not isinstance(criteria, list) or not criteria:
        raise ValidationError({"criteria": "criteria must be a non-empty list."})
    if len(criteria) > MAX_CRITERIA:
        raise ValidationError({"criteria": f"At most {MAX_CRITERIA} criteria are allowed."})
    seen: set[str] = set()
    for position, criterion in enumerate(criteria):
        where = f"criteria[{position}]"
        if not isinstance(criterion, dict):
            raise ValidationError({"criteria": f"{where} must be an object."})
        key = criterion.get("key")
        if not isinstance(key, str) or not CRITERION_KEY.match(key):
            raise ValidationError(
                {"criteria": f"{where}.key must be lowercase letters, digits or _, up to 32."}
            )
        if key in seen:
            raise ValidationError({"criteria": f"{where}.key {key!r} is used twice."})
        seen.add(key)
        question = criterion.get("question")
        if not isinstance(question, str) or not question.strip() or len(question) > 300:
            raise ValidationError({"criteria": f"{where}.question must be 1 to 300 characters."})
        for flag in ("allow_tie", "allow_both_bad"):
            if not isinstance(criterion.get(flag, False), bool):
                raise ValidationError({"criteria": f"{where}.{flag} must be true or false."})
        unknown = set(criterion) - {"key", "question", "allow_tie", "allow_both_bad"}
        if unknown:
            raise ValidationError({"criteria": f"{where} has unknown fields: {sorted(unknown)}."})


def normalise_criteria(criteria: list[dict]) -> list[dict]:
    return [
        {
            "key": c["key"],
            "question": c["question"].strip(),
            "allow_tie": bool(c.get("allow_tie", False)),
            "allow_both_bad": bool(c.get("allow_both_bad", False)),
        }
        for c in criteria
    ]
