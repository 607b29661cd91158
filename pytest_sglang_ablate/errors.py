"""The errors the plugin raises, from bad matrix input to servers that fail."""

from __future__ import annotations

from enum import Enum


class FailureClass(str, Enum):
    """How a server failed, in the classes users act on; docs/lifecycle.md says what to do about each."""

    BAD_FLAG = "bad_flag"
    PORT_IN_USE = "port_in_use"
    OOM = "oom"
    GRAPH_CAPTURE = "graph_capture"
    MISSING_GPU = "missing_gpu"  # a rank asked for a GPU its process cannot see (fewer than the row needs)
    CRASH = "crash"
    EXITED = "exited"  # exited during startup without a known error text
    STARTUP_TIMEOUT = "startup_timeout"
    CONFIG_DRIFT = "config_drift"
    DIED_DURING_WORKLOAD = "died_during_workload"
    TEARDOWN = "teardown"
    PREPARE = "prepare"  # a matrix `prepare:` command failed, so no row ran
    TOO_BIG = "too_big"  # not run: the row needs more nodes or GPUs than this run has (outcome skipped)
    WRONG_OUTPUT = "wrong_output"  # ran, but its greedy outputs diverge from the reference row's (kind agreement)

    def __str__(self) -> str:
        return self.value


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


class UsageProblem(AblateError):
    """A setting that cannot work here (e.g. launcher slurm outside an allocation): pytest reports it as a usage
    error, with what to do."""


class ServerError(AblateError):
    """A server failed; `failure_class` names how (docs/lifecycle.md lists the classes)."""

    def __init__(
        self, message: str, failure_class: FailureClass | None = None, evidence: str = "", phase: str | None = None
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.evidence = evidence  # the log's words for it (exception, advice, cause): what `match:` rules search
        self.phase = phase  # when it happened, where the log says: "cuda graph capture", "model load", ...


class ServerLaunchError(ServerError):
    """The server did not come up as asked (bad flag, OOM, graph capture, crash, port, config drift).

    Known-issue xfails expect this class."""


class ServerStartTimeout(ServerError):
    """The server did not answer its health check before the deadline: not a known-issue failure."""


class ServerDied(ServerError):
    """The server exited while a workload was running."""


class WrongOutput(ServerError):
    """The server answered, but its greedy outputs diverge from the reference row's beyond the workload's
    tolerance (an agreement workload); a known issue with `class: wrong_output` expects it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FailureClass.WRONG_OUTPUT, evidence=message)


class TeardownError(ServerError):
    """Stopping a server left something behind: a process, the port, or GPU memory."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FailureClass.TEARDOWN)


class PrepareError(ServerError):
    """A matrix `prepare:` command failed: no row can run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, FailureClass.PREPARE)
