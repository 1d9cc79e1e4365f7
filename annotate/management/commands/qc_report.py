"""Print a campaign's quality report: alpha per criterion, alerts, leaderboard, raters."""

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Campaign
from annotate.quality.selectors import quality_summary

NO_CAMPAIGN = "No campaign with slug {slug!r}."


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Print the quality report of one campaign as readable tables."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="campaign slug")
        parser.add_argument("--raters", type=int, default=50, help="rater rows to print")

    def handle(self, *args, campaign: str, raters: int, **options):
        found = Campaign.objects.filter(slug=campaign).first()
        if found is None:
            raise CommandError(NO_CAMPAIGN.format(slug=campaign))
        summary = quality_summary(campaign=found)
        out = self.stdout.write
        out(f"Quality report: {found.slug} ({found.kind}, overlap {found.overlap})\n")
        out("Agreement (Krippendorff's alpha, 95% unit-bootstrap interval)")
        out(f"  {'criterion':<16}{'unit':<14}{'units':>8}  {'nominal':<24}{'ordinal':<24}status")
        for row in summary["agreement"]:
            cells = []
            for level in ("nominal", "ordinal"):
                a = row[level]
                cells.append(f"{_num(a['alpha'])} [{_num(a['low'])}, {_num(a['high'])}]")
            out(
                f"  {row['criterion']:<16}{row['unit']:<14}{row['units']:>8}  "
                f"{cells[0]:<24}{cells[1]:<24}{row['status']}"
            )
        for alert in summary["alerts"]:
            out(
                f"  ALERT {alert['criterion']}: window alpha {_num(alert['alpha'])} is more than "
                f"{summary['policy']['alpha_drop']} below its baseline {_num(alert['baseline'])}"
            )
        out("\nModel leaderboard (Bradley-Terry log-strength, 95% interval)")
        for rank, row in enumerate(summary["leaderboard"], 1):
            out(
                f"  {rank:>2}. {row['model']:<28}{row['score']:+.3f} "
                f"[{row['low']:+.3f}, {row['high']:+.3f}]  W/T/L {row['wins']}/{row['ties']}/{row['losses']}"
            )
        out("\nRaters")
        out(
            f"  {'user':<18}{'state':<11}{'judg':>6}{'gold':>8}{'agree':>7}{'recent':>7}"
            f"{'left':>6}{'ties':>6}{'repeat':>7}{'sec':>6}{'recent':>7}{'kappa':>7}  flags"
        )
        for row in summary["raters"][:raters]:
            out(
                f"  {row['username'][:17]:<18}{row['gate_state']:<11}{row['judgments']:>6}"
                f"{row['gold_correct']:>4}/{row['gold_wrong']:<3}{_num(row['agreement'], 2):>7}"
                f"{_num(row['recent_agreement'], 2):>7}"
                f"{_num(row['left_share'], 2):>6}{_num(row['tie_rate'], 2):>6}"
                f"{_num(row['repeat_consistency'], 2):>7}{_num(row['median_seconds'], 1):>6}"
                f"{_num(row['recent_median_seconds'], 1):>7}"
                f"{_num(row['kappa'], 2):>7}  {','.join(row['flags'])}"
            )
        out("\nRecent gate events")
        for event in summary["gate_events"][:20]:
            out(
                f"  {event['created_at']:%Y-%m-%d %H:%M} {event['username']}: "
                f"{event['from_state']} -> {event['to_state']} ({event['rule']}"
                f"{', by ' + event['by'] if event['by'] else ''}) {event['reason']}"
            )
