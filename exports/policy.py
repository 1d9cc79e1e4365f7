"""Which judgments an export keeps, and why it leaves the others out.

The policy is one table, RULES: each rule names a reason, the fact about a judgment that
leaves it out for that reason, and the Policy switch (if any) that turns the rule on. A
judgment is left out under the first rule that applies, so each left-out judgment is
counted once: a blocked rater's judgment counts as `blocked_rater` even when it is also
flagged, gold or a repeat. The three places that apply the policy take it from here:

- `policy_case_sql`: the rules as an SQL CASE (the counting aggregate of a pairwise export,
  exports.column_selectors);
- `policy_reason_codes`: the rules as numpy's np.select over a batch's fact columns
  (exports.column_scan);
- `policy_decision_table`: the rules as a lookup table from a judgment's fact bits to its
  reason, which the per-row loop (exports.scan.decide_batch) indexes;
- `policy_left_out_q`: the rules whose facts are known before any answer is read, as an ORM
  filter (the emptiness check before an export starts, exports.selectors).
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from django.db.models import Q

from annotate.criteria import BOTH_BAD as BOTH_BAD_ANSWER
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

# The facts a rule tests. Rater facts are decided once per rater (rater_verdict); the
# answer facts from the export criterion's answer: missing, or not a preference's shape
# (no_answer), or "both_bad". A judgment has at most one of the two answer facts.
RATER_BLOCKED = "rater_blocked"
FLAGGED = "flagged"
RATER_LEFT_OUT = "rater_left_out"  # no membership, or a gate state the policy leaves out
IS_GOLD = "is_gold"
IS_REPEAT = "is_repeat"
ANSWER_BOTH_BAD = "answer_both_bad"
ANSWER_MISSING = "answer_missing"
FACTS = (
    RATER_BLOCKED,
    FLAGGED,
    RATER_LEFT_OUT,
    IS_GOLD,
    IS_REPEAT,
    ANSWER_BOTH_BAD,
    ANSWER_MISSING,
)
# A fact's bit in policy_decision_table's index.
BIT = {fact: 1 << position for position, fact in enumerate(FACTS)}


@dataclass(frozen=True)
class Rule:
    reason: str
    fact: str
    switch: str | None = None  # the Policy flag that turns the rule on; None: always on


RULES = (
    Rule(BLOCKED_RATER, RATER_BLOCKED),
    Rule(EXCLUDED_FLAG, FLAGGED),
    Rule(STATE_NOT_INCLUDED, RATER_LEFT_OUT),
    Rule(GOLD, IS_GOLD, switch="exclude_gold"),
    Rule(REPEAT, IS_REPEAT, switch="exclude_repeats"),
    Rule(BOTH_BAD, ANSWER_BOTH_BAD),
    Rule(NO_ANSWER, ANSWER_MISSING),
)
REASONS = tuple(rule.reason for rule in RULES)
# policy_reason_codes' code for a kept judgment; a left-out one's is its index in REASONS.
KEPT_CODE = len(REASONS)

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


def policy_rules(policy: Policy) -> tuple[Rule, ...]:
    """The rules this policy turns on, in order."""
    return tuple(rule for rule in RULES if rule.switch is None or getattr(policy, rule.switch))


@cache
def policy_decision_table(policy: Policy) -> tuple[str | None, ...]:
    """The rules as a table: entry `bits` is the reason of a judgment whose facts are the
    BIT values summed in `bits` (None: kept). Built once per policy, so the per-row loop
    looks a reason up instead of walking the rules."""
    rules = policy_rules(policy)
    return tuple(
        next((rule.reason for rule in rules if bits & BIT[rule.fact]), None)
        for bits in range(1 << len(FACTS))
    )


def policy_left_out_q(policy: Policy, *, campaign_id: int) -> Q:
    """A Judgment filter for the judgments of campaign `campaign_id` that the rules turned
    on leave out whatever their answer: the rules over the rater, the flag, gold and repeats.
    The answer's rules are left to the export itself. Q() (nothing left out) when none is on."""
    raters = Membership.objects.filter(campaign_id=campaign_id)
    facts = {
        RATER_BLOCKED: Q(
            annotator_id__in=raters.filter(gate_state=BLOCKED_STATE).values("user_id")
        ),
        FLAGGED: Q(excluded=True),
        RATER_LEFT_OUT: ~Q(
            annotator_id__in=raters.filter(gate_state__in=policy.states).values("user_id")
        ),
        IS_GOLD: Q(is_gold=True),
        IS_REPEAT: Q(is_repeat=True),
    }
    left_out = Q()
    for rule in policy_rules(policy):
        if rule.fact in facts:
            left_out |= facts[rule.fact]
    return left_out


def _facts_sql(policy: Policy) -> dict[str, tuple[str, list]]:
    """Each fact in SQL, with its parameters, over `j` (a judgment with `answer`, the
    criterion's answer as text) and `m` (the rater's membership, null when none)."""
    states = ", ".join(["%s"] * len(policy.states))
    return {
        RATER_BLOCKED: ("m.gate_state = %s", [BLOCKED_STATE]),
        FLAGGED: ("j.excluded", []),
        RATER_LEFT_OUT: (
            f"m.gate_state IS NULL OR m.gate_state NOT IN ({states})",
            list(policy.states),
        ),
        IS_GOLD: ("j.is_gold", []),
        IS_REPEAT: ("j.is_repeat", []),
        ANSWER_BOTH_BAD: ("j.answer = %s", [BOTH_BAD_ANSWER]),
        ANSWER_MISSING: ("j.answer IS NULL", []),
    }


def policy_case_sql(
    policy: Policy, *, kept: str, then: tuple[tuple[str, str], ...] = ()
) -> tuple[str, list]:
    """The rules as `CASE WHEN <fact> THEN '<reason>' ... ELSE '<kept>' END` and its
    parameters; `then` adds (condition, label) checks after the rules (conditions and
    labels come from code, never from a request)."""
    facts = _facts_sql(policy)
    whens, params = [], []
    for rule in policy_rules(policy):
        sql, values = facts[rule.fact]
        whens.append(f"WHEN {sql} THEN '{rule.reason}'")
        params += values
    whens += [f"WHEN {condition} THEN '{label}'" for condition, label in then]
    return "CASE " + " ".join(whens) + f" ELSE '{kept}' END", params


def policy_reason_codes(policy: Policy, facts: Mapping[str, Any]) -> Any:
    """The rules as np.select over boolean arrays, one per fact: per judgment the index in
    REASONS of the first rule that applies, KEPT_CODE when none does."""
    import numpy as np

    rules = policy_rules(policy)
    return np.select(
        [facts[rule.fact] for rule in rules],
        [REASONS.index(rule.reason) for rule in rules],
        default=KEPT_CODE,
    )
