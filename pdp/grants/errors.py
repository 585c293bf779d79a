"""Typed failures of grant sync. None of them leaves more access than the policies allow:
a failed read stops the target before anything runs, a failed step is reported and skipped."""

from __future__ import annotations


class GrantSyncError(Exception):
    """Base class of everything this package raises on purpose."""


class ReadError(GrantSyncError):
    """The current grants of a target could not be read, so nothing was planned or applied."""


class StepError(GrantSyncError):
    """One changing call failed after retries. `partial` is set when a batched call was split
    and only some of its parts failed."""

    def __init__(self, message: str, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


class UnknownConnection(GrantSyncError):
    """A target names a registry connection that holds no data source: it would plan nothing."""
