"""Create the demo users and the `demo` campaign. Running it twice changes nothing."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.models import Campaign, Comparison, Membership
from annotate.services.campaigns import campaign_create, campaign_update, membership_set
from annotate.services.prompts import PromptRow, prompts_add
from generation.demo import DEMO_MODELS, demo_generate, demo_gold_build, demo_prompts

DEFAULT_PASSWORD = "pickwise-demo"  # noqa: S105 - printed on screen, for local demos only
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
DEMO_QUESTION = "Which image shows the prompt better?"
DEMO_INSTRUCTIONS = """\
Each image was drawn for the prompt above it by one of three drawing programs, some more
careful than others. Pick the image that **shows what the prompt asks**: the right things,
in the right colours, as many as asked, and in the right place (left, right, top, bottom or
centre).

- **Tie** when both show the prompt exactly; **Both bad** when neither does.
- Count carefully: "three red circles" with four red circles is wrong.
- Keys: Left or 1, Right or 2, Down or 3 for a tie, B for both bad, S to skip.

Some items have a known answer; they decide whether you may go on, so take your time.
"""


class Command(BaseCommand):
    help = (
        "Create demo users (admin, researcher, annotator1-3) and the 'demo' campaign, whose "
        "images three procedural models draw from the prompts (no download, no GPU)."
    )

    def handle(self, *args, **options):
        password = settings.PICKWISE_DEMO_PASSWORD or DEFAULT_PASSWORD
        users = self._users(password)
        campaign = Campaign.objects.filter(slug="demo").first()
        if campaign is None:
            campaign = self._campaign(users)
        for name in ANNOTATORS:
            membership_set(campaign=campaign, user=users[name], role=Membership.Role.ANNOTATOR)
        membership_set(campaign=campaign, user=users["researcher"], role=Membership.Role.RESEARCHER)
        comparisons = campaign.comparisons.filter(role=Comparison.Role.REGULAR).count()
        gold = campaign.comparisons.filter(role=Comparison.Role.GOLD).count()
        self.stdout.write(
            f"Campaign 'demo': {campaign.prompts.count()} prompts, {comparisons} comparisons, "
            f"{gold} gold items."
        )
        shown = password if not settings.PICKWISE_DEMO_PASSWORD else "(from PICKWISE_DEMO_PASSWORD)"
        self.stdout.write(
            f"Demo logins: admin, researcher, {', '.join(ANNOTATORS)}; password: {shown}"
        )

    def _users(self, password: str) -> dict:
        User = get_user_model()
        users = {}
        for name in ("admin", "researcher", *ANNOTATORS):
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = name == "admin"
                user.save()
            users[name] = user
        researchers, _ = Group.objects.get_or_create(name="researchers")
        users["researcher"].groups.add(researchers)
        return users

    @transaction.atomic
    def _campaign(self, users: dict) -> Campaign:
        campaign = campaign_create(
            slug="demo",
            title="Demo: which image shows the prompt?",
            instructions=DEMO_INSTRUCTIONS,
            kind=Campaign.Kind.PAIRWISE,
            criteria=[
                {
                    "key": "overall",
                    "question": DEMO_QUESTION,
                    "allow_tie": True,
                    "allow_both_bad": True,
                }
            ],
            overlap=3,
            gold_rate=0.05,
            repeat_rate=0.05,
            qualification_size=10,
            created_by=users["admin"],
        )
        prompts_add(
            campaign=campaign,
            rows=[PromptRow(line=i + 1, text=t) for i, t in enumerate(demo_prompts())],
        )
        self.stdout.write(
            f"Drawing the demo images with {len(DEMO_MODELS)} procedural models "
            f"({', '.join(DEMO_MODELS)})..."
        )
        demo_generate(campaign=campaign)
        demo_gold_build(campaign=campaign)
        campaign.refresh_from_db()
        return campaign_update(campaign=campaign, status=Campaign.Status.ACTIVE)
