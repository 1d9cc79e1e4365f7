"""The one domain error services raise; pickwise.api maps it to a JSON response."""

from typing import Any


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
