#!/usr/bin/env bash
# The embedded default in one terminal: seeds the demo, then runs gunicorn and one Celery
# worker (with beat) side by side. Ctrl-C, or either process dying, stops both.
# gunicorn, not Django's dev server: a few worker processes with threads hold a crowd of
# annotators on SQLite (IMMEDIATE transactions queue on the busy timeout), where the dev
# server answered "database is locked" under load. WEB_WORKERS and WEB_THREADS size it.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WORKER_ARGS=${WORKER_ARGS:--Q default,generate,train -c 1 --pool=solo -l INFO}
WEB_WORKERS=${WEB_WORKERS:-2}
WEB_THREADS=${WEB_THREADS:-4}
VAR_DIR=${PICKWISE_VAR_DIR:-var}

logins="see manage.py seed_demo"
if "$BIN/python" manage.py help seed_demo >/dev/null 2>&1; then
  # Shown as it runs and kept for the banner. tee writes a temporary file, never
  # /dev/stderr: reopening that truncates a log file that both streams are redirected to.
  seeded=$(mktemp)
  PYTHONUNBUFFERED=1 "$BIN/python" manage.py seed_demo | tee "$seeded"
  # seed_demo knows the password (PICKWISE_DEMO_PASSWORD or its default): repeat its line.
  logins=$(grep -m 1 "Demo logins" "$seeded" || echo "$logins")
  rm -f "$seeded"
else
  echo "seed_demo is not available in this checkout; starting without demo data." >&2
fi

# Job control puts each child in its own process group, so one signal to the group also
# reaches gunicorn's workers, and a Ctrl-C reaches only this script.
set -m
"$BIN/gunicorn" pickwise.wsgi:application --bind "$HOST:$PORT" \
  --workers "$WEB_WORKERS" --threads "$WEB_THREADS" --timeout 120 --access-logfile - &
web=$!
# shellcheck disable=SC2086  # WORKER_ARGS is a list of flags
"$BIN/celery" -A pickwise worker -B $WORKER_ARGS --schedule "$VAR_DIR/celerybeat-schedule" &
worker=$!

stop() { # EXIT_STATUS
  trap - INT TERM EXIT
  echo "Stopping the web server and the worker..."
  kill -TERM -- "-$web" "-$worker" 2>/dev/null || true
  wait || true
  exit "$1"
}
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop $?' EXIT

cat <<BANNER

  Pickwise is running at http://$HOST:$PORT/
    API docs  http://$HOST:$PORT/api/docs/
    Admin     http://$HOST:$PORT/admin/
  $logins
  Press Ctrl-C to stop the web server and the worker.

BANNER

# Until either process exits (a polling loop, not `wait -n`, which macOS's bash 3.2 lacks).
# A Ctrl-C runs the trap at the latest a second later; the EXIT trap stops the other process.
while kill -0 "$web" 2>/dev/null && kill -0 "$worker" 2>/dev/null; do
  sleep 1
done
echo "The $(kill -0 "$web" 2>/dev/null && echo worker || echo web server) stopped." >&2
exit 1
