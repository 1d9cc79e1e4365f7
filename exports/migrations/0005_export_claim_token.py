# The claim fields take the sizes every claimed job shares (pickwise.jobs.ClaimedJob): wider only.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0004_export_sources"),
    ]

    operations = [
        migrations.AlterField(
            model_name="export",
            name="claim_token",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
