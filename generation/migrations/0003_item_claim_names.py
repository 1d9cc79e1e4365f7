# The item's claim takes the field names every claimed job shares (pickwise.jobs.ClaimedJob):
# claimed_by becomes worker, claimed_at becomes heartbeat_at. Renames keep the values.

from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0002_jobs_and_items"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="generationitem", name="generation_item_running"),
        migrations.RenameField(
            model_name="generationitem", old_name="claimed_by", new_name="worker"
        ),
        migrations.RenameField(
            model_name="generationitem", old_name="claimed_at", new_name="heartbeat_at"
        ),
        migrations.AlterField(
            model_name="generationitem",
            name="worker",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddIndex(
            model_name="generationitem",
            index=models.Index(
                condition=Q(status="running"),
                fields=["heartbeat_at"],
                name="generation_item_running",
            ),
        ),
    ]
