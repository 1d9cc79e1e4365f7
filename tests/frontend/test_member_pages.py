"""The members page: adding people by name or e-mail, roles, removal, and bulk accounts."""

import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.urls import reverse

from annotate.models import Membership
from annotate.services.assignments import assignment_next
from annotate.services.campaigns import membership_set
from annotate.services.judgments import judgment_submit
from annotate.services.members import (
    AMBIGUOUS_EMAIL,
    HAS_JUDGMENTS,
    LAST_ADMIN,
    MAX_PEOPLE_PER_LIST,
    NO_PEOPLE,
    TOO_MANY_PEOPLE,
    UNKNOWN_PERSON,
    USERNAME_TAKEN,
)
from tests.factories import CampaignFactory, UserFactory, annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db


def url(name, campaign, *args):
    return reverse(f"frontend:{name}", args=[campaign.pk, *args])


def html(response) -> str:
    return response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')


def admin_of(campaign, **fields):
    user = UserFactory(**fields)
    membership_set(campaign=campaign, user=user, role=Membership.Role.ADMIN)
    return user


def role_of(campaign, user):
    return Membership.objects.filter(campaign=campaign, user=user).values_list("role", flat=True)


# Access -----------------------------------------------------------------------------------


def test_the_members_pages_are_for_campaign_admins(client):
    campaign = CampaignFactory()
    other = annotator(campaign)
    posts = [
        url("campaign-members-add", campaign),
        url("campaign-accounts-create", campaign),
        url("campaign-member-role", campaign, other.pk),
        url("campaign-member-remove", campaign, other.pk),
    ]
    page = url("campaign-members", campaign)
    assert client.get(page).status_code == 302
    client.force_login(UserFactory())
    assert client.get(page).status_code == 404
    for role in (Membership.Role.ANNOTATOR, Membership.Role.RESEARCHER):
        user = UserFactory()
        membership_set(campaign=campaign, user=user, role=role)
        client.force_login(user)
        assert client.get(page).status_code == 403
        for post in posts:
            data = {"people": "x", "role": "admin", "usernames": "y"}
            assert client.post(post, data).status_code == 403
    assert list(role_of(campaign, other)) == ["annotator"]
    client.force_login(admin_of(campaign))
    assert client.get(page).status_code == 200
    assert client.get(posts[0]).status_code == 405
    client.force_login(UserFactory(is_superuser=True))
    assert other.username in client.get(page).content.decode()


# Adding -----------------------------------------------------------------------------------


def test_people_are_added_by_username_or_email_many_at_once(client):
    campaign = CampaignFactory()
    anna = UserFactory(username="anna")
    ben = UserFactory(username="ben", email="Ben@Example.org")
    client.force_login(admin_of(campaign))

    response = client.post(
        url("campaign-members-add", campaign),
        {"people": "anna\n\n  ben@example.ORG \nanna\n", "role": "annotator"},
        follow=True,
    )

    assert response.status_code == 200
    assert "2 added, 0 given a new role, 0 already so." in html(response)
    assert list(role_of(campaign, anna)) == list(role_of(campaign, ben)) == ["annotator"]
    again = client.post(
        url("campaign-members-add", campaign), {"people": "anna", "role": "researcher"}, follow=True
    )
    assert "0 added, 1 given a new role, 0 already so." in html(again)
    assert list(role_of(campaign, anna)) == ["researcher"]


def test_unknown_or_ambiguous_lines_are_listed_and_nobody_is_added(client):
    campaign = CampaignFactory()
    UserFactory(username="anna")
    UserFactory(username="twin1", email="same@example.org")
    UserFactory(username="twin2", email="same@example.org")
    client.force_login(admin_of(campaign))

    response = client.post(
        url("campaign-members-add", campaign),
        {"people": "anna\nnobody\nsame@example.org\n" + "x" * 300, "role": "annotator"},
    )

    assert response.status_code == 400
    page = html(response)
    assert "line 2: " + UNKNOWN_PERSON.format(value="nobody") in page
    assert "line 3: " + AMBIGUOUS_EMAIL.format(value="same@example.org") in page
    assert "line 4: The line is longer than 254 characters." in page
    assert Membership.objects.filter(campaign=campaign).count() == 1  # the admin alone


@pytest.mark.parametrize(
    ("people", "role", "sentence"),
    [
        ("   \n\n", "annotator", "This field is required."),
        ("\n \n", "annotator", "This field is required."),
        ("anna", "owner", "Select a valid choice."),
        (
            "\n".join(f"user{i}" for i in range(MAX_PEOPLE_PER_LIST + 1)),
            "annotator",
            TOO_MANY_PEOPLE.format(limit=MAX_PEOPLE_PER_LIST, count=MAX_PEOPLE_PER_LIST + 1),
        ),
        ("a" * 200_000, "annotator", "Ensure this value has at most"),
    ],
)
def test_malformed_and_oversized_lists_are_refused(client, people, role, sentence):
    campaign = CampaignFactory()
    UserFactory(username="anna")
    client.force_login(admin_of(campaign))
    response = client.post(url("campaign-members-add", campaign), {"people": people, "role": role})
    assert response.status_code == 400
    assert sentence in html(response)
    assert Membership.objects.filter(campaign=campaign).count() == 1


def test_the_service_refuses_an_empty_list():
    from annotate.services.members import members_add
    from pickwise.errors import ApplicationError

    with pytest.raises(ApplicationError, match=NO_PEOPLE):
        members_add(campaign=CampaignFactory(), text="\n  \n", role="annotator")


# Roles and removal ------------------------------------------------------------------------


def test_a_role_can_be_changed_but_the_last_admin_stays(client):
    campaign = CampaignFactory()
    boss = admin_of(campaign)
    rater = annotator(campaign)
    client.force_login(boss)

    client.post(url("campaign-member-role", campaign, rater.pk), {"role": "admin"})
    assert list(role_of(campaign, rater)) == ["admin"]
    client.post(url("campaign-member-role", campaign, boss.pk), {"role": "annotator"})
    assert list(role_of(campaign, boss)) == ["annotator"]
    client.force_login(rater)
    page = client.post(
        url("campaign-member-role", campaign, rater.pk), {"role": "researcher"}, follow=True
    )
    assert LAST_ADMIN.format(username=rater.username) in html(page)
    assert list(role_of(campaign, rater)) == ["admin"]
    bad = client.post(url("campaign-member-role", campaign, boss.pk), {"role": "king"}, follow=True)
    assert "Select a valid choice." in html(bad)


def test_someone_outside_the_campaign_is_not_found(client):
    campaign = CampaignFactory()
    outsider = annotator(CampaignFactory())
    client.force_login(admin_of(campaign))
    assert (
        client.post(
            url("campaign-member-role", campaign, outsider.pk), {"role": "admin"}
        ).status_code
        == 404
    )
    assert client.post(url("campaign-member-remove", campaign, outsider.pk)).status_code == 404
    assert list(role_of(outsider.memberships.get().campaign, outsider)) == ["annotator"]


def test_members_without_judgments_can_be_removed_others_are_kept(client):
    campaign = campaign_with_comparisons(prompts=2)
    boss = admin_of(campaign)
    idle = annotator(campaign)
    worker = annotator(campaign)
    assignment = assignment_next(campaign=campaign, annotator=worker)
    judgment_submit(assignment=assignment, answers={"overall": "tie"}, duration_ms=900)
    client.force_login(boss)

    client.post(url("campaign-member-remove", campaign, idle.pk))
    kept = client.post(url("campaign-member-remove", campaign, worker.pk), follow=True)
    last = client.post(url("campaign-member-remove", campaign, boss.pk), follow=True)

    assert not role_of(campaign, idle).exists()
    assert HAS_JUDGMENTS.format(username=worker.username, count=1) in html(kept)
    assert role_of(campaign, worker).exists()
    assert LAST_ADMIN.format(username=boss.username) in html(last)


# Accounts ---------------------------------------------------------------------------------


def test_accounts_are_created_with_passwords_shown_once_and_stored_hashed(client):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign, is_staff=True))

    response = client.post(
        url("campaign-accounts-create", campaign), {"usernames": "rater01\nrater02\n"}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    passwords = re.findall(r"<td>(rater0\d)</td><td data-password>([^<]+)</td>", html(response))
    assert [name for name, _ in passwords] == ["rater01", "rater02"]
    for username, password in passwords:
        user = get_user_model().objects.get(username=username)
        assert password not in user.password and user.password.startswith("pbkdf2_")
        assert authenticate(username=username, password=password) == user
        assert list(role_of(campaign, user)) == ["annotator"]
    assert passwords[0][1] != passwords[1][1]
    members_page = client.get(url("campaign-members", campaign)).content.decode()
    assert passwords[0][1] not in members_page


def test_taken_or_malformed_usernames_create_nobody(client):
    campaign = CampaignFactory()
    UserFactory(username="Anna")
    client.force_login(admin_of(campaign, is_staff=True))

    response = client.post(
        url("campaign-accounts-create", campaign),
        {"usernames": "fresh\nanna\nbad name!\nfresh"},
    )

    assert response.status_code == 400
    page = html(response)
    assert "line 2: " + USERNAME_TAKEN.format(value="anna") in page
    assert "line 3: Enter a valid username." in page
    assert "line 4: " + USERNAME_TAKEN.format(value="fresh") in page
    assert not get_user_model().objects.filter(username="fresh").exists()


def test_only_site_staff_and_campaign_creators_may_create_accounts(client):
    campaign = CampaignFactory()
    client.force_login(admin_of(campaign))  # a campaign admin without site powers
    response = client.post(url("campaign-accounts-create", campaign), {"usernames": "sneaky"})
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="sneaky").exists()
    assert (
        b"Creating accounts is for site staff"
        in client.get(url("campaign-members", campaign)).content
    )
