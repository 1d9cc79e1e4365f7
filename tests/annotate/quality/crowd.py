"""A tiny scripted crowd for quality tests: real assignment_next and judgment_submit."""

import random
from collections.abc import Callable

from annotate.models import Assignment, Campaign, Image
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from pickwise.errors import ApplicationError

Chooser = Callable[[Assignment, dict[str, str], random.Random], dict]


def models_of(campaign: Campaign) -> dict[str, str]:
    return {
        str(uid): name
        for uid, name in Image.objects.filter(prompt__campaign=campaign).values_list(
            "uid", "model_name"
        )
    }


def prefers(model: str) -> Chooser:
    """Always picks the image made by `model` (the 'truth'); tie on anything else."""

    def choose(assignment, models, rng):
        picks = [uid for uid in assignment.presented if models.get(uid) == model]
        return {"overall": picks[0] if picks else "tie"}

    return choose


def always_left(assignment, models, rng):
    return {"overall": assignment.presented[0]}


def always_tie(assignment, models, rng):
    return {"overall": "tie"}


def random_clicker(assignment, models, rng):
    return {"overall": rng.choice([*assignment.presented, "tie", "both_bad"])}


def ranker(assignment, models, rng):
    order = sorted(assignment.presented, key=lambda uid: models.get(uid, ""))
    if rng.random() < 0.3:
        return {"overall": [[order[0]], order[1:]]}
    return {"overall": [[uid] for uid in order]}


def run_crowd(
    campaign: Campaign,
    raters: list[tuple[object, Chooser]],
    *,
    seed: int = 0,
    max_rounds: int = 1000,
) -> int:
    """Round-robin next + submit until nobody gets a task; returns judgments submitted."""
    rng = random.Random(seed)
    models = models_of(campaign)
    submitted = 0
    active = list(raters)
    for _ in range(max_rounds):
        still = []
        for user, choose in active:
            try:
                assignment = assignment_next(campaign=campaign, annotator=user)
            except ApplicationError:  # blocked, or the campaign closed: this rater is done
                continue
            if assignment is None:
                continue
            judgment_submit(
                assignment=assignment,
                answers=choose(assignment, models, rng),
                duration_ms=rng.randint(800, 4000),
            )
            submitted += 1
            still.append((user, choose))
        if not still:
            break
        active = still
    return submitted
