"""Create the demo users and the `demo` campaign. Running it twice changes nothing."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.demo import DEMO_MODELS, DEMO_PROMPTS, draw_demo_image
from annotate.models import Campaign, Comparison, Membership
from annotate.services.campaigns import campaign_create, membership_set
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.gold import gold_build
from annotate.services.images import image_create
from annotate.services.prompts import PromptRow, prompts_add

DEFAULT_PASSWORD = "pickwise-demo"  # noqa: S105 - printed on screen, for local demos only
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
GOLD_ITEMS = 20


class Command(BaseCommand):
    help = "Create demo users (admin, researcher, annotator1-3) and the 'demo' campaign."

    def add_arguments(self, parser):
        parser.add_argument(
            "--drawn",
            action="store_true",
            help="Draw demo images with Pillow even when the tiny diffusion model could run.",
        )

    def handle(self, *args, drawn: bool = False, **options):
        password = settings.PICKWISE_DEMO_PASSWORD or DEFAULT_PASSWORD
        users = self._users(password)
        campaign = Campaign.objects.filter(slug="demo").first()
        if campaign is None:
            campaign = self._campaign(users, drawn=drawn)
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
    def _campaign(self, users: dict, *, drawn: bool) -> Campaign:
        campaign = campaign_create(
            slug="demo",
            title="Demo: which image fits the prompt better?",
            instructions=(
                "Pick the image that **fits the prompt better** and looks better.\n\n"
                "Keys: Left or 1, Right or 2, Down or 3 for a tie, B if both are bad, S to skip."
            ),
            kind=Campaign.Kind.PAIRWISE,
            overlap=3,
            gold_rate=0.05,
            repeat_rate=0.05,
            qualification_size=10,
            created_by=users["admin"],
        )
        prompts_add(
            campaign=campaign, rows=[PromptRow(line=i, text=t) for i, t in enumerate(DEMO_PROMPTS)]
        )
        if drawn or not self._generate_with_tiny_model(campaign):
            self.stdout.write("Drawing demo images with Pillow (labelled 'demo image').")
            for prompt in campaign.prompts.all():
                for model in DEMO_MODELS:
                    image_create(
                        prompt=prompt,
                        data=draw_demo_image(prompt=prompt.text, model=model),
                        model_name=model,
                        seed=secrets.randbelow(2**31),
                    )
            comparisons_build_for_campaign(campaign=campaign)
            gold_build(campaign=campaign, count=GOLD_ITEMS)
        campaign.status = Campaign.Status.ACTIVE
        campaign.save(update_fields=["status"])
        return campaign

    def _generate_with_tiny_model(self, campaign: Campaign) -> bool:
        """Render the demo with the tiny offline diffusion model when the ML stack is present."""
        try:
            from generation.demo import demo_generate
        except ImportError:
            return False
        self.stdout.write("Generating demo images with the tiny offline diffusion model...")
        return demo_generate(
            campaign=campaign, models=["tiny-sd-a", "tiny-sd-b"], seeds_per_prompt=2
        )
