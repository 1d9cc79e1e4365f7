# The claim fields take the sizes every claimed job shares (pickwise.jobs.ClaimedJob): wider only.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0009_dynamic_overlap"),
    ]

    operations = [
        migrations.AlterField(
            model_name="imageimport",
            name="claim_token",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="imageimport",
            name="worker",
            field=models.CharField(blank=True, max_length=255),
        ),
    ]
