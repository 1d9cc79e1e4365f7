# The claim fields take the sizes every claimed job shares (pickwise.jobs.ClaimedJob): wider only.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_rankdpo_method"),
    ]

    operations = [
        migrations.AlterField(
            model_name="trainingjob",
            name="worker",
            field=models.CharField(blank=True, max_length=255),
        ),
    ]
