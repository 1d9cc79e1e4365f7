"""Quality at scale: full recompute over ~1M judgments on PostgreSQL, and the cost of a submit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pickwise_quality_scale \\
        python bench/quality_scale.py --judgments 1000000

Rows are generated with set-based SQL (generate_series), not through the services: a
pairwise campaign, 4 models per prompt (6 pairs), overlap 3, 1000 raters (5% of them
near chance), 2% gold and 5% side-swapped repeats on top. The database is dropped and
rebuilt on each run unless --reuse is given; its random draws are seeded (SEED), so two
databases built by the same script hold the same ratings. Then:
- the full recompute (every rater's counters and kappa, side by side with alpha and its
  1000-replicate unit-bootstrap intervals), median of --repeats runs, split into steps;
- the gating sweep after it (applies the rules to every rater);
- per submit: queries and milliseconds of judgment_submit through the real service for a
  rater with a long history, on comparisons that already hold two ratings.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-key-not-secret")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pickwise_quality_scale")
# Tasks a gate move enqueues stay in this process (the bench measures, it does not deliver).
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

RATERS = 1000
SEED = 0.42  # PostgreSQL's setseed() for the generated rows
OPEN_FOR_SUBMITS = 300  # comparisons left with two of three ratings, for the submit timing


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judgments", type=int, default=1_000_000, help="regular judgments")
    parser.add_argument("--repeats", type=int, default=3, help="recompute runs (median)")
    parser.add_argument("--submits", type=int, default=100)
    parser.add_argument("--reuse", action="store_true", help="keep the generated rows")
    return parser.parse_args()


def ensure_database() -> None:
    import environ
    import psycopg

    url = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    admin = psycopg.connect(
        host=url["HOST"],
        port=url["PORT"] or 5432,
        user=url["USER"],
        dbname="postgres",
        autocommit=True,
    )
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url["NAME"]]).fetchone()
    if not exists:
        admin.execute(f'CREATE DATABASE "{url["NAME"]}"')
    admin.close()


GENERATE = """
INSERT INTO annotate_prompt (campaign_id, text, negative_prompt, meta, created_at)
SELECT %(campaign)s, 'prompt ' || n, '', '{}'::jsonb, now() FROM generate_series(1, %(prompts)s) n;

INSERT INTO annotate_image (uid, prompt_id, file, sha256, width, height, model_name, params, source, created_at)
SELECT gen_random_uuid(), p.id, 'images/' || p.id || '-' || m || '.png', md5(p.id || '-' || m), 64, 64,
       'model-' || m, '{}'::jsonb, 'imported', now()
FROM annotate_prompt p CROSS JOIN generate_series(0, 3) m WHERE p.campaign_id = %(campaign)s;

INSERT INTO annotate_comparison (campaign_id, prompt_id, key, role, gold_kind, wanted, done, in_flight, status,
                                 priority, created_at)
SELECT %(campaign)s, a.prompt_id, a.id || '-' || b.id, 'regular', '', 3, 3, 0, 'full', 0, now()
FROM annotate_image a JOIN annotate_image b ON a.prompt_id = b.prompt_id AND a.id < b.id
JOIN annotate_prompt p ON p.id = a.prompt_id AND p.campaign_id = %(campaign)s;

INSERT INTO annotate_comparisonimage (comparison_id, image_id, slot)
SELECT id, split_part(key, '-', 1)::bigint, 0 FROM annotate_comparison WHERE campaign_id = %(campaign)s
UNION ALL
SELECT id, split_part(key, '-', 2)::bigint, 1 FROM annotate_comparison WHERE campaign_id = %(campaign)s;

CREATE TEMP TABLE plan AS
WITH c AS (
    SELECT c.id, row_number() OVER (ORDER BY c.id) AS n,
           lo.id AS lo_id, lo.uid::text AS lo_uid, hi.id AS hi_id, hi.uid::text AS hi_uid,
           (hashtext(c.id::text) & 1) * 2 AS truth
    FROM annotate_comparison c
    JOIN annotate_image lo ON lo.id = split_part(c.key, '-', 1)::bigint
    JOIN annotate_image hi ON hi.id = split_part(c.key, '-', 2)::bigint
    WHERE c.campaign_id = %(campaign)s
), r AS (
    SELECT c.*, k,
           CASE WHEN c.n > %(full)s THEN 1 + (c.n * 7 + k * 331) %% (%(raters)s - 1)
                ELSE (c.n * 7 + k * 331) %% %(raters)s END AS rater,
           random() AS u1, random() AS u2, random() < 0.5 AS lo_left
    FROM c CROSS JOIN generate_series(0, 2) k
    WHERE c.n <= %(full)s OR k < 2
)
SELECT r.id AS comparison_id, r.k, r.n, r.lo_id, r.hi_id, r.lo_uid, r.hi_uid, r.lo_left,
       %(first_user)s + r.rater AS user_id,
       CASE WHEN r.u1 < 0.08 THEN 1
            WHEN r.u2 < (CASE WHEN r.rater %% 20 = 10 THEN 0.5 ELSE 0.8 END) THEN r.truth
            ELSE 2 - r.truth END AS value,
       (1500 + (random() * 6000))::int AS ms
FROM r;

INSERT INTO annotate_assignment (campaign_id, comparison_id, annotator_id, presented, issued_at, expires_at,
                                 state, is_gold, is_repeat, sequence, closed_at)
SELECT %(campaign)s, comparison_id, user_id,
       CASE WHEN lo_left THEN jsonb_build_array(lo_uid, hi_uid) ELSE jsonb_build_array(hi_uid, lo_uid) END,
       now() - interval '1 day', now(), 'submitted', false, false, n, now()
FROM plan;

INSERT INTO annotate_judgment (assignment_id, campaign_id, comparison_id, annotator_id, answers, presented,
                               duration_ms, server_ms, is_gold, is_repeat, excluded, never_shown,
                               created_at)
SELECT a.id, %(campaign)s, p.comparison_id, p.user_id,
       jsonb_build_object('overall', CASE p.value WHEN 0 THEN p.lo_uid WHEN 2 THEN p.hi_uid ELSE 'tie' END),
       a.presented, p.ms, p.ms + 200, false, false, false, false,
       now() - interval '1 day' + (p.n || ' milliseconds')::interval
FROM plan p JOIN annotate_assignment a
  ON a.comparison_id = p.comparison_id AND a.annotator_id = p.user_id AND NOT a.is_repeat;

INSERT INTO annotate_rating (campaign_id, comparison_id, judgment_id, annotator_id, criterion, kind,
                             image_lo_id, image_hi_id, value, side, speed_bucket, excluded, created_at)
SELECT %(campaign)s, p.comparison_id, j.id, p.user_id, 'overall', 0, p.lo_id, p.hi_id, p.value,
       CASE WHEN p.lo_left THEN 1 ELSE -1 END, width_bucket(p.ms, %(edges)s), false, j.created_at
FROM plan p JOIN annotate_judgment j ON j.comparison_id = p.comparison_id AND j.annotator_id = p.user_id;

UPDATE annotate_comparison c SET done = 2, status = 'open'
FROM plan p WHERE p.comparison_id = c.id AND p.n > %(full)s;

-- Gold: 100 items, every rater meets 20 of them.
INSERT INTO annotate_comparison (campaign_id, prompt_id, key, role, gold_answer, gold_kind, wanted, done,
                                 in_flight, status, priority, created_at)
SELECT %(campaign)s, (SELECT min(id) FROM annotate_prompt WHERE campaign_id = %(campaign)s),
       'gold-' || g, 'gold', '{"overall": "tie"}'::jsonb, 'identical', 3, 0, 0, 'open', 0, now()
FROM generate_series(1, 100) g;

CREATE TEMP TABLE gold_plan AS
SELECT c.id AS comparison_id, %(first_user)s + u AS user_id, random() < 0.9 AS correct
FROM generate_series(0, %(raters)s - 1) u CROSS JOIN generate_series(0, 19) s
JOIN annotate_comparison c ON c.key = 'gold-' || (1 + (u + s * 5) %% 100) AND c.campaign_id = %(campaign)s;

INSERT INTO annotate_assignment (campaign_id, comparison_id, annotator_id, presented, issued_at, expires_at,
                                 state, is_gold, is_repeat, sequence, closed_at)
SELECT %(campaign)s, comparison_id, user_id, '[]'::jsonb, now(), now(), 'submitted', true, false, 0, now()
FROM gold_plan;

INSERT INTO annotate_judgment (assignment_id, campaign_id, comparison_id, annotator_id, answers, presented,
                               duration_ms, server_ms, is_gold, is_repeat, gold_correct, excluded,
                               never_shown, created_at)
SELECT a.id, %(campaign)s, g.comparison_id, g.user_id, '{"overall": "tie"}'::jsonb, '[]'::jsonb, 3000, 3200,
       true, false, g.correct, false, false, now()
FROM gold_plan g JOIN annotate_assignment a
  ON a.comparison_id = g.comparison_id AND a.annotator_id = g.user_id AND a.is_gold;

-- Repeats: every 20th regular judgment once more, sides swapped, 80%% the same answer.
CREATE TEMP TABLE repeat_plan AS
SELECT j.id AS original_id, j.comparison_id, j.annotator_id,
       CASE WHEN random() < 0.8 THEN j.answers ELSE '{"overall": "tie"}'::jsonb END AS answers,
       (SELECT jsonb_agg(e ORDER BY o DESC) FROM jsonb_array_elements(j.presented) WITH ORDINALITY AS x(e, o)) AS presented
FROM annotate_judgment j
WHERE j.campaign_id = %(campaign)s AND NOT j.is_gold AND j.id %% 20 = 0;

INSERT INTO annotate_assignment (campaign_id, comparison_id, annotator_id, presented, issued_at, expires_at,
                                 state, is_gold, is_repeat, repeat_of_id, sequence, closed_at)
SELECT %(campaign)s, comparison_id, annotator_id, presented, now(), now(), 'submitted', false, true,
       original_id, 0, now()
FROM repeat_plan;

INSERT INTO annotate_judgment (assignment_id, campaign_id, comparison_id, annotator_id, answers, presented,
                               duration_ms, server_ms, is_gold, is_repeat, excluded, never_shown,
                               created_at)
SELECT a.id, %(campaign)s, r.comparison_id, r.annotator_id, r.answers, r.presented, 2500, 2700,
       false, true, false, false, now()
FROM repeat_plan r JOIN annotate_assignment a ON a.repeat_of_id = r.original_id;

UPDATE annotate_membership SET issued = 5000 WHERE campaign_id = %(campaign)s;
ANALYZE;
"""


def generate(args) -> "object":
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotate.models import Campaign, Membership
    from annotate.quality.encoding import SPEED_EDGES_MS
    from annotate.services.campaigns import membership_set

    campaign = Campaign.objects.create(
        slug="scale",
        title="Scale",
        status=Campaign.Status.ACTIVE,
        overlap=3,
        gold_rate=0.0,
        repeat_rate=0.0,
        qualification_size=0,
    )
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"rater-{i}") for i in range(RATERS)])
    for user in users:
        membership_set(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
    comparisons = (args.judgments + 2) // 3 + OPEN_FOR_SUBMITS
    prompts = (comparisons + 5) // 6
    params = {
        "campaign": campaign.pk,
        "prompts": prompts,
        "raters": RATERS,
        "first_user": users[0].pk,
        "full": prompts * 6 - OPEN_FOR_SUBMITS,
        "edges": SPEED_EDGES_MS,
    }
    with connection.cursor() as cursor:
        # The same draws on every run, so two databases generated for a before/after compare
        # hold the same ratings (random() below is PostgreSQL's, seeded per session).
        cursor.execute("SELECT setseed(%s)", [SEED])
        for statement in GENERATE.split(";\n"):
            if statement.strip():
                cursor.execute(statement, params)
    return campaign


def main() -> None:
    args = parse()
    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotate.models import Campaign, Judgment, Membership
    from annotate.quality.models import Rating
    from annotate.quality.services import gating_sweep, quality_recompute
    from annotate.services.assignments import assignment_next
    from annotate.services.judgments import judgment_submit

    print(
        f"quality_scale: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Django {django.get_version()}, PostgreSQL {connection.cursor().connection.info.server_version}"
    )
    started = time.perf_counter()
    campaign = Campaign.objects.filter(slug="scale").first() if args.reuse else None
    if campaign is None:
        call_command("flush", interactive=False, verbosity=0)
        call_command("migrate", verbosity=0)
        campaign = generate(args)
    judgments = Judgment.objects.filter(campaign=campaign).count()
    regular = Judgment.objects.filter(campaign=campaign, is_gold=False, is_repeat=False).count()
    print(
        f"data: {judgments} judgments ({regular} regular, {Rating.objects.count()} ratings), "
        f"{RATERS} raters, ready in {time.perf_counter() - started:.0f} s\n"
    )

    runs = [quality_recompute(campaign=campaign, evaluate=False) for _ in range(args.repeats)]
    steps = ("read_s", "stats_compute_s", "agreement_s", "stats_write_s", "total_s")
    print(f"{'full recompute (s)':<24}" + "".join(f"{s[:-2]:>16}" for s in steps))
    for index, run in enumerate(runs, 1):
        print(f"{'run ' + str(index):<24}" + "".join(f"{run[s]:>16.2f}" for s in steps))
    median = {s: statistics.median(run[s] for run in runs) for s in steps}
    print(f"{'median':<24}" + "".join(f"{median[s]:>16.2f}" for s in steps))
    sweep_started = time.perf_counter()
    moves = gating_sweep(campaign=campaign)
    sweep = time.perf_counter() - sweep_started
    print(f"gating sweep after it: {sweep:.2f} s, {moves} gate moves\n")

    # Per submit: a rater with a long history, on comparisons that hold two ratings.
    rater = Membership.objects.filter(campaign=campaign).order_by("user_id").first().user
    history = Judgment.objects.filter(campaign=campaign, annotator=rater).count()
    submit_ms, submit_queries, next_ms, quality_queries = [], [], [], []
    for _ in range(args.submits):
        t0 = time.perf_counter()
        assignment = assignment_next(campaign=campaign, annotator=rater)
        next_ms.append((time.perf_counter() - t0) * 1000)
        if assignment is None:
            break
        with CaptureQueriesContext(connection) as captured:
            t0 = time.perf_counter()
            judgment_submit(
                assignment=assignment,
                answers={"overall": assignment.presented[0]},
                duration_ms=2000,
            )
            submit_ms.append((time.perf_counter() - t0) * 1000)
        submit_queries.append(len(captured))
        quality_queries.append(sum("annotate_rat" in q["sql"] for q in captured.captured_queries))
    print(
        f"per submit ({len(submit_ms)} submits, rater with {history} judgments, 2 co-raters each):"
    )
    print(
        f"  judgment_submit: median {statistics.median(submit_ms):.1f} ms, p95 "
        f"{sorted(submit_ms)[int(0.95 * len(submit_ms)) - 1]:.1f} ms, queries {min(submit_queries)}-"
        f"{max(submit_queries)} (of which quality tables {min(quality_queries)}-{max(quality_queries)})"
    )
    print(f"  assignment_next: median {statistics.median(next_ms):.1f} ms")
    print(
        f"\nsummary: full recompute of {judgments} judgments median {median['total_s']:.2f} s "
        f"(target < 3 s); submit {max(submit_queries)} queries, median {statistics.median(submit_ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
