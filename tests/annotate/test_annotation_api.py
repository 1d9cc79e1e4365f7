import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotate.apis import JudgmentSubmitApi, TaskSerializer
from annotate.models import Assignment, Campaign, Judgment, Membership
from annotate.selectors import assignment_task
from annotate.services.campaigns import membership_set
from annotate.services.gold import gold_build
from annotate.services.judgments import CAMPAIGN_CLOSED
from tests.factories import UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _next_url(campaign):
    return reverse("annotate:next", args=[campaign.pk])


def _submit_url(assignment_id):
    return reverse("annotate:submit", args=[assignment_id])


def test_a_token_from_username_and_password_authenticates_scripts(api_client):
    UserFactory(username="scripter")
    response = api_client.post(
        "/api/auth/token/", {"username": "scripter", "password": "pw-for-tests-1"}, format="json"
    )
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api_client.get("/api/campaigns/").status_code == 200


def test_a_revoked_token_stops_working(api_client):
    UserFactory(username="scripter")
    token = api_client.post(
        "/api/auth/token/", {"username": "scripter", "password": "pw-for-tests-1"}, format="json"
    ).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.delete("/api/auth/token/").status_code == 204
    assert api_client.get("/api/campaigns/").status_code == 401


def test_a_wrong_password_gets_a_json_error(api_client):
    UserFactory(username="scripter")
    response = api_client.post(
        "/api/auth/token/", {"username": "scripter", "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_credentials"


def test_token_requests_are_rate_limited(api_client):
    statuses = [
        api_client.post(
            "/api/auth/token/", {"username": "x", "password": "y"}, format="json"
        ).status_code
        for _ in range(25)
    ]
    assert statuses[-1] == 429


def test_the_annotation_loop_over_http(api_client):
    campaign = campaign_with_comparisons(prompts=2, overlap=1)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    task = api_client.post(_next_url(campaign), {}, format="json").json()
    assert set(task) == {"id", "kind", "expires_at", "prompt", "images", "criteria"}
    assert [image["uid"] for image in task["images"]] != []
    assert all(image["url"].startswith("/media/images/") for image in task["images"])
    winner = task["images"][0]["uid"]
    response = api_client.post(
        _submit_url(task["id"]), {"answers": {"overall": winner}, "duration_ms": 900}, format="json"
    )
    assert response.status_code == 201
    repeat = api_client.post(
        _submit_url(task["id"]), {"answers": {"overall": winner}, "duration_ms": 900}, format="json"
    )
    assert repeat.status_code == 200 and repeat.json()["id"] == response.json()["id"]
    second = api_client.post(_next_url(campaign), {}, format="json").json()
    api_client.post(_submit_url(second["id"]), {"answers": {"overall": "tie"}}, format="json")
    assert api_client.post(_next_url(campaign), {}, format="json").status_code == 204
    assert Judgment.objects.count() == 2


def test_tasks_never_reveal_gold_answers_or_model_names(api_client):
    campaign = campaign_with_comparisons(prompts=4, qualification_size=5)
    gold_build(campaign=campaign, count=4)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    response = api_client.post(_next_url(campaign), {}, format="json")
    body = response.content.decode()
    assert response.status_code == 200
    for secret in ("gold", "model-a", "model-b", "is_repeat", "derived"):
        assert secret not in body


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_next_and_submit_only_take_post(api_client, method):
    campaign = campaign_with_comparisons(prompts=1)
    api_client.force_authenticate(annotator(campaign))
    assert getattr(api_client, method)(_next_url(campaign)).status_code == 405
    assert getattr(api_client, method)(_submit_url(1)).status_code in (404, 405)


def test_anonymous_requests_are_refused(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    assert api_client.post(_next_url(campaign), {}, format="json").status_code in (401, 403)
    assert api_client.post(_submit_url(1), {}, format="json").status_code in (401, 403)
    assert api_client.get("/api/campaigns/").status_code in (401, 403)


def test_non_members_see_nothing_and_non_annotators_get_no_tasks(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    api_client.force_authenticate(UserFactory())
    assert api_client.post(_next_url(campaign), {}, format="json").status_code == 404
    assert api_client.get(f"/api/campaigns/{campaign.pk}/").status_code == 404
    assert api_client.get("/api/campaigns/").json() == []
    researcher = UserFactory()
    membership_set(campaign=campaign, user=researcher, role=Membership.Role.RESEARCHER)
    api_client.force_authenticate(researcher)
    assert api_client.post(_next_url(campaign), {}, format="json").status_code == 403


def test_another_annotators_assignment_is_invisible(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    owner, intruder = annotator(campaign), annotator(campaign)
    api_client.force_authenticate(owner)
    task = api_client.post(_next_url(campaign), {}, format="json").json()
    api_client.force_authenticate(intruder)
    response = api_client.post(
        _submit_url(task["id"]), {"answers": {"overall": "tie"}}, format="json"
    )
    assert response.status_code == 404
    assert api_client.post(reverse("annotate:skip", args=[task["id"]])).status_code == 404
    assert Judgment.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"answers": "left"},
        {"answers": {}},
        {"answers": {"overall": "tie"}, "duration_ms": -5},
        {"answers": {"overall": "tie"}, "duration_ms": "soon"},
        {"answers": {"overall": "tie", "extra": "x"}},
    ],
)
def test_malformed_submits_get_400_and_store_nothing(api_client, body):
    campaign = campaign_with_comparisons(prompts=1)
    api_client.force_authenticate(annotator(campaign))
    task = api_client.post(_next_url(campaign), {}, format="json").json()
    response = api_client.post(_submit_url(task["id"]), body, format="json")
    assert response.status_code == 400
    assert set(response.json()) >= {"detail", "code"}
    assert Judgment.objects.count() == 0


def test_an_oversized_body_is_refused(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    campaign = campaign_with_comparisons(prompts=1)
    api_client.force_authenticate(annotator(campaign))
    task = api_client.post(_next_url(campaign), {}, format="json").json()
    body = {"answers": {"overall": "x" * 20_000}}
    response = api_client.post(_submit_url(task["id"]), body, format="json")
    assert response.status_code in (400, 413)
    assert Judgment.objects.count() == 0


def test_a_blocked_annotator_gets_403_with_code_blocked(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    user = annotator(campaign)
    Membership.objects.filter(user=user).update(gate_state="blocked", gate_reason="always tie")
    api_client.force_authenticate(user)
    response = api_client.post(_next_url(campaign), {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "blocked" and "always tie" in response.json()["detail"]


def test_a_paused_campaign_hands_out_nothing(api_client):
    campaign = campaign_with_comparisons(prompts=1, status=Campaign.Status.PAUSED)
    api_client.force_authenticate(annotator(campaign))
    response = api_client.post(_next_url(campaign), {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "campaign_not_active"


def test_campaign_creation_needs_the_right_and_validates(api_client):
    user = UserFactory()
    api_client.force_authenticate(user)
    body = {"slug": "new-one", "title": "New", "kind": "ranking", "k": 4}
    assert api_client.post("/api/campaigns/", body, format="json").status_code == 403
    user.groups.add(Group.objects.get_or_create(name="campaign-admins")[0])
    created = api_client.post("/api/campaigns/", body, format="json")
    assert created.status_code == 201 and created.json()["k"] == 4
    assert api_client.post("/api/campaigns/", body, format="json").status_code == 409
    bad = api_client.post(
        "/api/campaigns/", {"slug": "bad", "title": "x", "kind": "pairwise", "k": 5}, format="json"
    )
    assert bad.status_code == 400
    bad_criteria = api_client.post(
        "/api/campaigns/",
        {"slug": "bad2", "title": "x", "criteria": [{"key": "Bad Key", "question": "?"}]},
        format="json",
    )
    assert bad_criteria.status_code == 400


def test_only_campaign_admins_change_a_campaign_or_its_members(api_client):
    campaign = campaign_with_comparisons(prompts=1)
    worker = annotator(campaign)
    api_client.force_authenticate(worker)
    url = f"/api/campaigns/{campaign.pk}/"
    assert api_client.patch(url, {"overlap": 5}, format="json").status_code == 403
    members = f"/api/campaigns/{campaign.pk}/members/"
    assert api_client.post(members, {"members": []}, format="json").status_code == 403
    boss = UserFactory()
    membership_set(campaign=campaign, user=boss, role=Membership.Role.ADMIN)
    api_client.force_authenticate(boss)
    assert api_client.patch(url, {"overlap": 5}, format="json").json()["overlap"] == 5
    assert api_client.patch(url, {"kind": "ranking", "k": 3}, format="json").status_code == 409
    newcomer = UserFactory(username="newcomer")
    response = api_client.post(
        members, {"members": [{"username": "newcomer", "role": "annotator"}]}, format="json"
    )
    assert response.status_code == 200
    assert Membership.objects.filter(user=newcomer, role="annotator").exists()
    unknown = api_client.post(
        members, {"members": [{"username": "ghost", "role": "annotator"}]}, format="json"
    )
    assert unknown.status_code == 400 and "ghost" in unknown.json()["detail"]


def test_the_openapi_schema_documents_the_contract(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = (
        response.json()["paths"]
        if response["content-type"].startswith("application/json")
        else None
    )
    text = response.content.decode()
    for path in (
        "/api/auth/token/",
        "/api/campaigns/",
        "/api/campaigns/{campaign_id}/next/",
        "/api/assignments/{assignment_id}/submit/",
    ):
        assert path in (paths or text)


def test_next_and_submit_use_a_fixed_number_of_queries(api_client, django_assert_max_num_queries):
    campaign = campaign_with_comparisons(prompts=30, overlap=3)
    user = annotator(campaign)
    # A real token, so the pins include authentication (remembered after the first request).
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    for _ in range(3):  # warm: later calls must not grow with history
        task = api_client.post(_next_url(campaign), {}, format="json").json()
        api_client.post(_submit_url(task["id"]), {"answers": {"overall": "tie"}}, format="json")
    # Counts include the two SAVEPOINT statements the test transaction adds around the service.
    # PostgreSQL picks, takes the slot and reads the task's images in one statement; SQLite
    # takes four (pick, take, count the task, read the images).
    postgresql = connection.vendor == "postgresql"
    with django_assert_max_num_queries(6 if postgresql else 9):
        task = api_client.post(_next_url(campaign), {}, format="json").json()
    # Submit also keeps the rater's quality counters (rating row, co-raters, stats row).
    with django_assert_max_num_queries(9 if postgresql else 11):
        response = api_client.post(
            _submit_url(task["id"]), {"answers": {"overall": "tie"}}, format="json"
        )
    assert response.status_code == 201


def test_a_remembered_token_costs_no_query(api_client):
    user = UserFactory(username="scripter")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api_client.get("/api/campaigns/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/campaigns/").status_code == 200
    assert not [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]


def test_a_token_deleted_elsewhere_stops_working_at_once(api_client):
    user = UserFactory(username="scripter")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api_client.get("/api/campaigns/").status_code == 200  # remembered from here on
    Token.objects.filter(user=user).delete()  # as the admin or a deleted user does
    assert api_client.get("/api/campaigns/").status_code == 401


def test_a_deactivated_users_token_stops_working_at_once(api_client):
    user = UserFactory(username="scripter")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api_client.get("/api/campaigns/").status_code == 200
    user.is_active = False
    user.save()
    assert api_client.get("/api/campaigns/").status_code == 401


def test_a_made_up_token_is_refused_every_time(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert api_client.get("/api/campaigns/").status_code == 401
    assert api_client.get("/api/campaigns/").status_code == 401


def test_next_and_submit_answer_what_their_serializers_document(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    task = api_client.post(_next_url(campaign), {}, format="json").json()
    assignment = Assignment.objects.select_related("campaign").get(pk=task["id"])
    assert task == TaskSerializer(assignment_task(assignment=assignment)).data
    response = api_client.post(
        _submit_url(task["id"]), {"answers": {"overall": "tie"}}, format="json"
    )
    judgment = Judgment.objects.get(assignment=assignment)
    assert response.json() == JudgmentSubmitApi.OutputSerializer(judgment).data


def test_a_submit_after_the_campaign_closed_is_refused_but_a_repeat_still_answers(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)
    api_client.force_authenticate(user)
    first = api_client.post(_next_url(campaign), {}, format="json").json()
    second = api_client.post(_next_url(campaign), {"exclude": [first["id"]]}, format="json").json()
    answer = {"answers": {"overall": "tie"}}
    done = api_client.post(_submit_url(first["id"]), answer, format="json")
    assert done.status_code == 201
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    late = api_client.post(_submit_url(second["id"]), answer, format="json")
    assert late.status_code == 409
    assert late.json() == {"detail": CAMPAIGN_CLOSED, "code": "campaign_closed"}
    again = api_client.post(_submit_url(first["id"]), answer, format="json")
    assert again.status_code == 200 and again.json()["id"] == done.json()["id"]
    assert Judgment.objects.filter(annotator=user).count() == 1
