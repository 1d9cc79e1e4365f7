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
# Per 2 cores: 3 processes, so that a process stopped in a garbage collection or holding
# its GIL for a long request leaves two others serving; 4 threads each, 12 requests in
# progress at once, enough to keep both cores and the database busy at saturation (the
# figures and the alternatives tried are in bench/RESULTS.md). More cores: scale both.
workers = int(os.environ.get("WEB_CONCURRENCY") or 3)
threads = int(os.environ.get("WEB_THREADS") or 4)
# Annotators send next and submit on one connection a few seconds apart: keep it open
# rather than pay a TCP handshake per request.
keepalive = 30
timeout = 120
