"""gunicorn's settings for the web service: docker-compose.yml serves with this file and
bench/annotate_load.py measures with it, so production runs what the benchmark measured
(bench/RESULTS.md, "Annotation loop"). WEB_CONCURRENCY and WEB_THREADS override the sizes.
gunicorn also reads this file on its own when started in the repository's root (make run,
whose script passes its own sizes).
"""

import os

wsgi_app = "pickwise.wsgi:application"
# Threads: a request spends about half its time waiting on PostgreSQL (and COMMIT on the
# disk), and a thread that waits leaves the core to another request; idle keep-alive
# connections wait in the poller without holding a thread.
worker_class = "gthread"
# Per 2 cores: 3 processes of 4 threads. On the 2-core benchmark this served 102 judgments/s
# at saturation against 95 for 4 x 2, with the same p99 for 100 thinking annotators, and
# threads waiting for the GIL took 2 ms of the slowest 1% of requests (bench/RESULTS.md).
# More cores: scale the processes.
workers = int(os.environ.get("WEB_CONCURRENCY") or 3)
threads = int(os.environ.get("WEB_THREADS") or 4)
# Annotators send next and submit on one connection a few seconds apart: keep it open
# rather than pay a TCP handshake per request.
keepalive = 30
timeout = 120
