"""Who takes part in a campaign: adding people by name or e-mail, roles, removal, and
annotator accounts made in bulk.

Lists come one person per line; a list is checked whole before anything is written, and bad
lines are reported with their line numbers, as for prompt imports.
"""

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower

from annotate.models import Campaign, Judgment, Membership
from annotate.services.campaigns import membership_set
from pickwise.errors import ApplicationError

MAX_PEOPLE_PER_LIST = 500
MAX_LINE_CHARS = 254
NEW_PASSWORD_BYTES = 12  # token_urlsafe: 16 characters, about 96 bits

NO_PEOPLE = "The list is empty: write one username or e-mail address per line."
TOO_MANY_PEOPLE = "A list takes at most {limit} people; this one has {count}."
BAD_LINES = "{count} line(s) could not be used; nobody was added."
UNKNOWN_PERSON = "No account has the username or e-mail address {value!r}."
AMBIGUOUS_EMAIL = "{value!r} is the e-mail address of several accounts; use the username."
LINE_TOO_LONG = "The line is longer than {limit} characters."
USERNAME_TAKEN = "The username {value!r} is taken."
UNKNOWN_USERS = "Unknown users: {names}."
NOT_A_MEMBER = "{username} is not a member of this campaign."
LAST_ADMIN = "{username} is the campaign's last admin; make someone else admin first."
HAS_JUDGMENTS = (
    "{username} has {count} judgment(s) in this campaign, so stays on its record: block them "
    "on the dashboard instead, which also leaves their judgments out of statistics and exports."
)


@dataclass
class MembersAddResult:
    added: list[Membership] = field(default_factory=list)
    changed: list[Membership] = field(default_factory=list)
    unchanged: list[Membership] = field(default_factory=list)


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped value) for each non-blank line; refuse empty or long lists."""
    lines = [
        (number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]
    if not lines:
        raise ApplicationError(NO_PEOPLE, code="empty")
    if len(lines) > MAX_PEOPLE_PER_LIST:
        raise ApplicationError(
            TOO_MANY_PEOPLE.format(limit=MAX_PEOPLE_PER_LIST, count=len(lines)), code="too_many"
        )
    return lines


def _raise_if_errors(errors: list[dict]) -> None:
    if errors:
        raise ApplicationError(
            BAD_LINES.format(count=len(errors)), code="invalid_rows", extra={"errors": errors}
        )


def users_find(*, text: str) -> list[AbstractBaseUser]:
    """The accounts named one per line by username or e-mail (case-insensitive), duplicates
    dropped, in the list's order. Raises ApplicationError listing lines that name no one."""
    User = get_user_model()
    lines = _lines(text)
    emails = {value.lower() for _, value in lines if "@" in value}
    matches = list(
        User.objects.annotate(email_lower=Lower("email"))
        .filter(Q(username__in=[value for _, value in lines]) | Q(email_lower__in=emails))
        .only("id", "username", "email")
    )
    by_username = {user.username: user for user in matches}
    by_email: dict[str, list] = {}
    for user in matches:
        if user.email:
            by_email.setdefault(user.email.lower(), []).append(user)
    errors: list[dict] = []
    found: dict[int, AbstractBaseUser] = {}
    for number, value in lines:
        if len(value) > MAX_LINE_CHARS:
            errors.append({"line": number, "error": LINE_TOO_LONG.format(limit=MAX_LINE_CHARS)})
            continue
        user = by_username.get(value)
        if user is None:
            owners = by_email.get(value.lower(), [])
            if len(owners) > 1:
                errors.append({"line": number, "error": AMBIGUOUS_EMAIL.format(value=value)})
                continue
            user = owners[0] if owners else None
        if user is None:
            errors.append({"line": number, "error": UNKNOWN_PERSON.format(value=value)})
            continue
        found.setdefault(user.pk, user)
    _raise_if_errors(errors)
    return list(found.values())


def _role_set(*, campaign: Campaign, user: AbstractBaseUser, role: str) -> Membership:
    """membership_set, keeping the campaign's last admin. Needs a transaction."""
    current = (
        Membership.objects.select_for_update()
        .filter(campaign=campaign, user=user)
        .values_list("role", flat=True)
        .first()
    )
    if current == Membership.Role.ADMIN and role != Membership.Role.ADMIN:
        _refuse_if_last_admin(campaign=campaign, user=user)
    return membership_set(campaign=campaign, user=user, role=role)


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid")


@transaction.atomic
def members_add(*, campaign: Campaign, text: str, role: str) -> MembersAddResult:
    """Give everyone listed `role` in the campaign; all or nothing."""
    _check_role(role)
    users = users_find(text=text)
    before = dict(
        Membership.objects.filter(campaign=campaign, user__in=users).values_list("user_id", "role")
    )
    result = MembersAddResult()
    for user in users:
        membership = _role_set(campaign=campaign, user=user, role=role)
        if user.pk not in before:
            result.added.append(membership)
        elif before[user.pk] != role:
            result.changed.append(membership)
        else:
            result.unchanged.append(membership)
    return result


@transaction.atomic
def members_set(*, campaign: Campaign, members: list[dict]) -> list[Membership]:
    """The API's form: [{username, role}, ...], all or nothing. New admins are made before
    anyone is demoted, so a list that hands the admin role over is not refused halfway."""
    for member in members:
        _check_role(member["role"])
    users = get_user_model().objects.in_bulk(
        [m["username"] for m in members], field_name="username"
    )
    missing = sorted({m["username"] for m in members} - set(users))
    if missing:
        raise ApplicationError(
            UNKNOWN_USERS.format(names=", ".join(missing[:20])), code="unknown_users"
        )
    done = {}
    for member in sorted(members, key=lambda m: m["role"] != Membership.Role.ADMIN):
        user = users[member["username"]]
        done[member["username"]] = _role_set(campaign=campaign, user=user, role=member["role"])
    return [done[m["username"]] for m in members]


def _membership_locked(*, campaign: Campaign, user: AbstractBaseUser) -> Membership:
    membership = (
        Membership.objects.select_for_update()
        .select_related("user")
        .filter(campaign=campaign, user=user)
        .first()
    )
    if membership is None:
        raise ApplicationError(
            NOT_A_MEMBER.format(username=user.get_username()), code="not_member", status=404
        )
    return membership


def _refuse_if_last_admin(*, campaign: Campaign, user: AbstractBaseUser) -> None:
    others = (
        Membership.objects.select_for_update()
        .filter(campaign=campaign, role=Membership.Role.ADMIN)
        .exclude(user=user)
    )
    if not others.exists():
        raise ApplicationError(
            LAST_ADMIN.format(username=user.get_username()), code="last_admin", status=409
        )


@transaction.atomic
def membership_role_change(*, campaign: Campaign, user: AbstractBaseUser, role: str) -> Membership:
    """Change a member's role; the campaign always keeps one admin. Locks the membership."""
    _check_role(role)
    _membership_locked(campaign=campaign, user=user)
    return _role_set(campaign=campaign, user=user, role=role)


@transaction.atomic
def membership_remove(*, campaign: Campaign, user: AbstractBaseUser) -> None:
    """Take someone out of a campaign. Someone with judgments stays (their rater key names
    them in exports); block them instead. The last admin stays too."""
    membership = _membership_locked(campaign=campaign, user=user)
    judged = Judgment.objects.filter(campaign=campaign, annotator=user).count()
    if judged:
        raise ApplicationError(
            HAS_JUDGMENTS.format(username=user.get_username(), count=judged),
            code="has_judgments",
            status=409,
        )
    if membership.role == Membership.Role.ADMIN:
        _refuse_if_last_admin(campaign=campaign, user=user)
    membership.delete()


@transaction.atomic
def annotators_create(*, campaign: Campaign, text: str) -> list[tuple[AbstractBaseUser, str]]:
    """Make a new account per listed username, each with a random password, and add them as
    annotators. Returns (user, password) pairs: the only time the passwords exist in plain
    text; the database keeps only their hashes. All or nothing."""
    User = get_user_model()
    lines = _lines(text)
    errors: list[dict] = []
    seen: set[str] = set()
    field_ = User._meta.get_field(User.USERNAME_FIELD)
    names = []
    for number, value in lines:
        try:
            field_.clean(value, None)
        except ValidationError as error:
            errors.append({"line": number, "error": " ".join(error.messages)})
            continue
        if value.lower() in seen:
            errors.append({"line": number, "error": USERNAME_TAKEN.format(value=value)})
            continue
        seen.add(value.lower())
        names.append((number, value))
    # Case-insensitive: "Anna" next to "anna" is a mix-up waiting to happen at log-in.
    taken = set(
        User.objects.annotate(username_lower=Lower("username"))
        .filter(username_lower__in=[value.lower() for _, value in names])
        .values_list("username_lower", flat=True)
    )
    for number, value in names:
        if value.lower() in taken:
            errors.append({"line": number, "error": USERNAME_TAKEN.format(value=value)})
    errors.sort(key=lambda e: e["line"])
    _raise_if_errors(errors)
    created = []
    for _, username in names:
        password = secrets.token_urlsafe(NEW_PASSWORD_BYTES)
        user = User(username=username)
        user.set_password(password)
        user.save()
        membership_set(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR)
        created.append((user, password))
    return created
