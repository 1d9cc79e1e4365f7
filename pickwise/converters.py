"""Path converters.

`id` is Django's `int` bounded to 18 digits: every id fits a 64-bit column, so a path with
a larger number is a 404 instead of an overflow inside the database driver (a 500).
"""


class ObjectIdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
