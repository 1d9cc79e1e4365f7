"""The task outbox: messages for committed rows that have not reached the broker yet."""

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A task to send. Written in the transaction of the row it is about, deleted once the
    broker has taken it; what is left here the beat sweep sends again (pickwise.enqueue)."""

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    attempts = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
