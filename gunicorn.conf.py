"""gunicorn's settings for the web service: docker-compose.yml serves with this file and
bench/annotate_load.py measures with it, so production runs what the benchmark measured
(bench/RESULTS.md, "Annotation loop"). WEB_CONCURRENCY and WEB_THREADS override the sizes.
"""

import os

wsgi_app = "pickwise.wsgi:application"
# Threads, not sync workers: a thread waiting on PostgreSQL or Redis leaves the core to
# another request, and idle keep-alive connections wait in the poller without a thread.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Annotators send next and submit on one connection a few seconds apart: keep it open.
keepalive = 30
timeout = 120
