"""Typed failures of the object rules and the store.

Each names the field and the value at fault, so that the admin API can answer with a JSON body
that says what to fix. The three bases map to HTTP answers: `InvalidInput` 400, `NotFound` 404,
`Conflict` 409.
"""

from __future__ import annotations


class ObjectError(Exception):
    """A refusal that names the field and the value at fault."""

    def __init__(self, field: str, value: object, message: str) -> None:
        super().__init__(f"{field}: {message} (got {value!r})")
        self.field = field
        self.value = value
        self.message = message


class InvalidInput(ObjectError):
    """Bad input or a rule the request breaks (400)."""


class NotFound(ObjectError):
    """No such connection, object, job or request (404)."""


class Conflict(ObjectError):
    """The request clashes with what exists or runs (409)."""


class InvalidKey(InvalidInput):
    """A connection key breaks the key rules."""


class InvalidPath(InvalidInput):
    """An object path that cannot be parsed, or names a level deeper than a table."""


class TooManyDescendants(InvalidInput):
    """Enabling an object with 100,000 descendants or more (schemas excepted)."""


class PlaintextSecret(InvalidInput):
    """A credential given as a value where only a reference (or an encryption key) may do."""


class DuplicateKey(Conflict):
    """A connection key already taken, compared case-insensitively."""


class LockHeld(Conflict):
    """Another holder runs a job on this connection."""

    def __init__(self, field: str, value: object, message: str, holder: str | None = None):
        super().__init__(field, value, message)
        self.holder = holder


class InvalidTransition(Conflict):
    """A job state change that the job life cycle does not allow."""
