"""The WSGI application gunicorn serves (gunicorn.conf.py).

Once Django is set up and the URL conf has imported every view, serializer and service,
what exists lives as long as the process, so it is moved out of the garbage collector's
reach (gc.freeze). Without that each full collection walked some 130,000 objects: a pause
of about 80 ms of CPU during which no other thread of the process ran, which put requests
that were in flight at the time in the annotation loop's p99 (bench/RESULTS.md, "Annotation
loop"). Frozen, a full collection walks only what requests left behind (about 9 ms).
"""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
application = get_wsgi_application()


def _freeze_start_up_objects() -> None:
    from django.urls import get_resolver

    # Import the views now rather than on the first request, so that they are frozen too.
    get_resolver().url_patterns  # noqa: B018
    gc.collect()
    gc.freeze()


_freeze_start_up_objects()
