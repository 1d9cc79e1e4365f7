"""Container health check: exit 0 when the URL answers below 500.

Any answer, a 400 for a host name missing from ALLOWED_HOSTS included, shows the server is up.
"""

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    try:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 (a fixed local URL)
    except urllib.error.HTTPError as error:
        return 0 if error.code < 500 else 1
    except OSError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
