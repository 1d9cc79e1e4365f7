"""Forms of the members page: lists of people, one per line, and a role."""

from django import forms
from django.utils.translation import gettext_lazy as _

from annotate.models import Membership
from annotate.services.members import MAX_LINE_CHARS, MAX_PEOPLE_PER_LIST

# A list's characters: every line at its longest, with its line break.
MAX_LIST_CHARS = MAX_PEOPLE_PER_LIST * (MAX_LINE_CHARS + 2)
ROLE_CHOICES = [
    (Membership.Role.ANNOTATOR, _("Annotator: judges tasks")),
    (Membership.Role.RESEARCHER, _("Researcher: dashboard, quality, exports, training")),
    (Membership.Role.ADMIN, _("Admin: all of that, settings and members")),
]


class MembersAddForm(forms.Form):
    people = forms.CharField(
        label=_("Usernames or e-mail addresses, one per line"),
        max_length=MAX_LIST_CHARS,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "anna\nben@example.org"}),
        help_text=_("Existing accounts only; up to %(limit)s at once.")
        % {"limit": MAX_PEOPLE_PER_LIST},
    )
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES)


class AccountsCreateForm(forms.Form):
    usernames = forms.CharField(
        label=_("New usernames, one per line"),
        max_length=MAX_LIST_CHARS,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "rater01\nrater02"}),
        help_text=_(
            "Each gets an account with a random password and joins as an annotator. The "
            "passwords are shown once, on the next page, and are not kept: copy them there."
        ),
    )
