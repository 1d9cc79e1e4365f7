"""The Celery app. Queues: default (CPU), generate (one worker per GPU), train."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")

app = Celery("pickwise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("generate"), Queue("train"))
app.autodiscover_tasks()
