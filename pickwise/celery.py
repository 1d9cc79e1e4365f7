"""The Celery app. Queues: default (CPU), generate (one worker per GPU), train."""

import os

from celery import Celery
from kombu import Queue

from pickwise.broker import use_for_filesystem_urls

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
# The embedded broker writes its message files atomically (kombu's own does not).
use_for_filesystem_urls()

app = Celery("pickwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("generate"), Queue("train"))
app.autodiscover_tasks()
