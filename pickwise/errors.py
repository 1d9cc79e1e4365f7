"""The one domain error services raise; pickwise.api maps it to a JSON response."""

import re
from typing import Any

# Absolute paths (POSIX or Windows) in a message shown to users; URLs are left alone.
_ABSOLUTE_PATH = re.compile(r"(?:(?<![\w.~:/])/|\b[A-Za-z]:\\)[^\s'\",;:()\[\]]*")


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced by "<path>": for messages stored where users
    read them (a job's `error`), while the full message goes to the log."""
    return _ABSOLUTE_PATH.sub("<path>", text)


class ApplicationError(Exception):
    """A refused operation: `message` for people, `code` for programs, `status` for HTTP."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "error",
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra or {}
