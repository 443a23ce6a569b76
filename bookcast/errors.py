"""The one exception type for mistakes a user can make.

The CLI prints its message as a single sentence and exits with status 2;
anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad input the user can fix: a wrong path, unknown venue, corrupt file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
