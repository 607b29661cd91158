"""The errors the plugin raises, from bad matrix input to servers that fail."""

from __future__ import annotations


class AblateError(Exception):
    """Base class of every error this package raises on purpose."""


class MatrixError(AblateError):
    """A matrix file is wrong: names the file, the line, the key path and what was expected."""

    def __init__(self, file: str, line: int | None, path: str, message: str) -> None:
        self.file = file
        self.line = line
        self.path = path
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class ServerError(AblateError):
    """A server failed; `failure_class` names how (see docs/lifecycle.md)."""

    failure_class = "error"


class ServerLaunchError(ServerError):
    """The server did not come up: known-issue xfails expect this."""
