"""Validation of submitted answers against a campaign's criteria and an assignment's images.

Pairwise answers are a winner's image uid, "tie" or "both_bad" (where the criterion allows).
Ranking answers are tiers of image uids, best first; images in one tier are tied; the tiers
must cover exactly the assignment's images.
"""

from typing import Any

from annotate.criteria import BOTH_BAD, TIE
from pickwise.errors import ApplicationError

ANSWERS_NOT_AN_OBJECT = "answers must be an object with one answer per criterion."
MISSING_CRITERION = "answers lack criterion {key!r}."
UNKNOWN_CRITERION = "answers name unknown criteria: {keys}."
UNKNOWN_PAIRWISE_VALUE = (
    "Answer for {key!r} must be one of the shown image uids, 'tie' or 'both_bad'."
)
TIE_NOT_ALLOWED = "Criterion {key!r} does not allow a tie."
BOTH_BAD_NOT_ALLOWED = "Criterion {key!r} does not allow 'both_bad'."
RANKING_NOT_TIERS = "Answer for {key!r} must be a list of tiers, each a list of image uids."
RANKING_NOT_COVERING = "Ranking for {key!r} must place each shown image exactly once."
RANKING_TIE_NOT_ALLOWED = "Criterion {key!r} does not allow ties in a ranking."
RANKING_ALL_TIED = "Ranking for {key!r} puts every image in one tier; use at least two tiers."


def _invalid(template: str, **kwargs: Any) -> ApplicationError:
    return ApplicationError(template.format(**kwargs), code="invalid_answer", status=400)


def validate_answers(
    *, kind: str, criteria: list[dict], image_uids: list[str], answers: Any
) -> dict[str, Any]:
    """Return the answers normalised (uids as lower-case strings), or raise ApplicationError."""
    if not isinstance(answers, dict):
        raise _invalid(ANSWERS_NOT_AN_OBJECT)
    keys = [c["key"] for c in criteria]
    unknown = sorted(set(answers) - set(keys))
    if unknown:
        raise _invalid(UNKNOWN_CRITERION, keys=", ".join(map(str, unknown)))
    shown = {uid.lower() for uid in image_uids}
    normalised: dict[str, Any] = {}
    for criterion in criteria:
        key = criterion["key"]
        if key not in answers:
            raise _invalid(MISSING_CRITERION, key=key)
        if kind == "pairwise":
            normalised[key] = _pairwise(criterion, shown, answers[key])
        else:
            normalised[key] = _ranking(criterion, shown, answers[key])
    return normalised


def _pairwise(criterion: dict, shown: set[str], value: Any) -> str:
    key = criterion["key"]
    if not isinstance(value, str):
        raise _invalid(UNKNOWN_PAIRWISE_VALUE, key=key)
    value = value.strip().lower()
    if value == TIE:
        if not criterion.get("allow_tie"):
            raise _invalid(TIE_NOT_ALLOWED, key=key)
        return TIE
    if value == BOTH_BAD:
        if not criterion.get("allow_both_bad"):
            raise _invalid(BOTH_BAD_NOT_ALLOWED, key=key)
        return BOTH_BAD
    if value not in shown:
        raise _invalid(UNKNOWN_PAIRWISE_VALUE, key=key)
    return value


def _ranking(criterion: dict, shown: set[str], value: Any) -> list[list[str]]:
    key = criterion["key"]
    if not isinstance(value, list) or not value:
        raise _invalid(RANKING_NOT_TIERS, key=key)
    tiers: list[list[str]] = []
    placed: list[str] = []
    for tier in value:
        if not isinstance(tier, list) or not tier or not all(isinstance(u, str) for u in tier):
            raise _invalid(RANKING_NOT_TIERS, key=key)
        tier = [u.strip().lower() for u in tier]
        tiers.append(tier)
        placed.extend(tier)
    if len(placed) != len(shown) or set(placed) != shown:
        raise _invalid(RANKING_NOT_COVERING, key=key)
    if len(tiers) == 1:
        raise _invalid(RANKING_ALL_TIED, key=key)
    if len(tiers) != len(placed) and not criterion.get("allow_tie"):
        raise _invalid(RANKING_TIE_NOT_ALLOWED, key=key)
    return tiers
