"""Start-up recovery for GPU workers: what a killed worker held is handed back when it returns.

acks_late alone is not enough: the filesystem broker drops a message once read, and Redis
hands it out again only after the visibility timeout (hours). So a worker that starts asks
its queue's service to give back what its previous life claimed.
"""

import logging
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)


def recover_on_worker_start(
    *, sender, queue: str, label: str, recover: Callable[[str], dict]
) -> None:
    """Call `recover(hostname)` when the starting worker consumes `queue`; never raise.

    Logs "<label> recovery on start of <hostname>: <counts>".
    """
    app = sender.app if sender is not None else None
    if app is None or queue not in app.amqp.queues.consume_from:
        return
    hostname = getattr(sender, "hostname", "") or ""
    try:
        logger.info("%s recovery on start of %s: %s", label, hostname, recover(hostname))
    except Exception:
        logger.exception("%s recovery on start of %s failed", label, hostname)
    finally:
        # The prefork pool's children must not share the parent's database connection.
        connections.close_all()
