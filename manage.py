#!/usr/bin/env python
import os
import sys


def default_to_development() -> None:
    """Turn DEBUG on for a development checkout on the embedded default, as `make run` does.

    Only when neither DATABASE_URL nor DEBUG is set: a deployment names its database (or
    sets DEBUG=0) and keeps refusing to start without a SECRET_KEY. gunicorn and celery do
    not come through here, so they never get the development key.
    """
    if not os.environ.get("DATABASE_URL") and "DEBUG" not in os.environ:
        os.environ["DEBUG"] = "1"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pickwise.settings")
    default_to_development()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
