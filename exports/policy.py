"""Which judgments an export keeps, and why it leaves the others out.

Reasons are checked in the order of REASONS (in exports.scan.decide_batch, the hot loop), so
each left-out judgment is counted once, under the first reason that applies: a blocked
rater's judgment counts as `blocked_rater` even when it is also flagged, gold or a repeat.
"""

from dataclasses import asdict, dataclass
from typing import Any

from annotate.models import Membership
from exports.consensus_model import MODELS as CONSENSUS_MODELS
from pickwise.errors import ApplicationError

BLOCKED_RATER = "blocked_rater"
EXCLUDED_FLAG = "excluded_flag"
STATE_NOT_INCLUDED = "state_not_included"
GOLD = "gold"
REPEAT = "repeat"
BOTH_BAD = "both_bad"
NO_ANSWER = "no_answer"
REASONS = (BLOCKED_RATER, EXCLUDED_FLAG, STATE_NOT_INCLUDED, GOLD, REPEAT, BOTH_BAD, NO_ANSWER)

# Plain strings: compared once per judgment, where enum attribute lookups add up.
INCLUDABLE_STATES = (
    str(Membership.Gate.QUALIFYING),
    str(Membership.Gate.ACTIVE),
    str(Membership.Gate.WARNED),
)
BLOCKED_STATE = str(Membership.Gate.BLOCKED)
POLICY_NOT_AN_OBJECT = (
    "policy must be an object with states, exclude_gold, exclude_repeats, consensus and "
    "contested_below."
)
POLICY_UNKNOWN_KEYS = "policy has unknown keys: {keys}."
POLICY_BAD_STATES = (
    "policy.states must be a non-empty list of rater states from: qualifying, active, warned "
    "(blocked raters are never exported)."
)
POLICY_BAD_FLAG = "policy.{key} must be true or false."
POLICY_BAD_CONSENSUS = "policy.consensus must be one of: {models}."
POLICY_BAD_CONTESTED = "policy.contested_below must be a number from 0.5 to 1."


@dataclass(frozen=True)
class Policy:
    states: tuple[str, ...] = ("active", "warned")
    exclude_gold: bool = True
    exclude_repeats: bool = True
    # Each pair's consensus label (exports.consensus): the model, and the confidence under
    # which a pair is marked contested instead of given a winner.
    consensus: str = "dawid_skene"
    contested_below: float = 0.9

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["states"] = list(self.states)
        return data


def policy_from_dict(data: Any, *, training_format: bool) -> Policy:
    """Validate a requested policy; training formats always leave gold and repeats out."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApplicationError(POLICY_NOT_AN_OBJECT, code="invalid")
    known = {"states", "exclude_gold", "exclude_repeats", "consensus", "contested_below"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ApplicationError(POLICY_UNKNOWN_KEYS.format(keys=", ".join(unknown)), code="invalid")
    states = data.get("states", list(Policy.states))
    if (
        not isinstance(states, list | tuple)
        or not states
        or not all(isinstance(s, str) and s in INCLUDABLE_STATES for s in states)
    ):
        raise ApplicationError(POLICY_BAD_STATES, code="invalid")
    flags = {}
    for key in ("exclude_gold", "exclude_repeats"):
        value = data.get(key, True)
        if not isinstance(value, bool):
            raise ApplicationError(POLICY_BAD_FLAG.format(key=key), code="invalid")
        flags[key] = value or training_format
    model = data.get("consensus", Policy.consensus)
    if model not in CONSENSUS_MODELS:
        raise ApplicationError(
            POLICY_BAD_CONSENSUS.format(models=", ".join(CONSENSUS_MODELS)), code="invalid"
        )
    contested_below = data.get("contested_below", Policy.contested_below)
    if (
        isinstance(contested_below, bool)
        or not isinstance(contested_below, int | float)
        or not 0.5 <= contested_below <= 1
    ):
        raise ApplicationError(POLICY_BAD_CONTESTED, code="invalid")
    # Sorted and deduplicated, so the same policy is always recorded the same way.
    ordered = tuple(s for s in INCLUDABLE_STATES if s in set(states))
    return Policy(states=ordered, **flags, consensus=model, contested_below=float(contested_below))


def rater_verdict(*, gate_state: str | None, policy: Policy) -> tuple[bool, bool]:
    """(blocked, state included) for a rater: decided once per rater, not per judgment."""
    return gate_state == BLOCKED_STATE, gate_state in policy.states
