"""Status and activate-new settings: inheritance and the 100,000-descendant limit.

Every node may override `isActive` and `activateNewChildren` (true / false / null = inherit).
The effective value is the nearest override from the node up to its connection; with none the
default applies (inactive; new children inactive). A node that is missing remotely is disabled
whatever its overrides say, but keeps them, so that it comes back with its old status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pdp.objects.errors import TooManyDescendants
from pdp.objects.paths import Kind, ObjectPath


class RemoteState(StrEnum):
    PRESENT = "present"
    MISSING = "missing"  # the last successful listing of its parent no longer showed it
    UNKNOWN = "unknown"  # the listing of its parent (or its own listing) failed


class Origin(StrEnum):
    """Why an effective value is what it is."""

    OVERRIDE = "override"  # set on `source`, the node itself or an ancestor
    DEFAULT = "default"  # no override anywhere up to the connection
    MISSING = "missing"  # `source` is missing remotely, which disables it


DESCENDANT_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Node:
    """What inheritance needs to know of one node on the way from the connection down."""

    path: ObjectPath
    is_active: bool | None = None
    activate_new_children: bool | None = None
    remote_state: RemoteState = RemoteState.PRESENT


@dataclass(frozen=True, slots=True)
class Effective:
    value: bool
    origin: Origin
    source: ObjectPath | None = None  # the node that decided it; None for the default

    @property
    def inherited_from(self) -> str:
        """The path that set the value, or "default"."""
        return "default" if self.source is None else self.source.url


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    is_active: Effective
    activate_new_children: Effective


def effective_settings(chain: Sequence[Node]) -> EffectiveSettings:
    """`chain` runs from the connection down to the node asked about (it is the last item)."""
    if not chain:
        raise ValueError("effective_settings needs at least the connection node")
    return EffectiveSettings(
        is_active=effective_is_active(chain),
        activate_new_children=effective_activate_new(chain),
    )


def effective_is_active(chain: Sequence[Node]) -> Effective:
    for node in chain:  # a missing ancestor disables the subtree (sync marks it missing too)
        if node.remote_state is RemoteState.MISSING:
            return Effective(False, Origin.MISSING, node.path)
    return _nearest(chain, "is_active")


def effective_activate_new(chain: Sequence[Node]) -> Effective:
    return _nearest(chain, "activate_new_children")


def _nearest(chain: Sequence[Node], field: str) -> Effective:
    for node in reversed(chain):
        value = getattr(node, field)
        if value is not None:
            return Effective(value, Origin.OVERRIDE, node.path)
    return Effective(False, Origin.DEFAULT)


def new_child_override(parent: EffectiveSettings) -> bool | None:
    """The `isActive` override object sync gives an object it discovers below `parent`.

    The status of a new object comes from the nearest `activateNewChildren` above it. It gets an
    override only where inheritance would say otherwise, so that the tree keeps few overrides
    and Enable/Disable on an ancestor keeps reaching it."""
    wanted = parent.activate_new_children.value
    return None if wanted == parent.is_active.value else wanted


def check_enable_limit(
    path: ObjectPath, descendants: int, was_active: bool, will_be_active: bool
) -> None:
    """Refuse to enable (directly or by inheritance) an object with 100,000 descendants or
    more, except a schema (the level just above tables). Disabling is never limited."""
    if not will_be_active or was_active or path.kind is Kind.SCHEMA:
        return
    if descendants >= DESCENDANT_LIMIT:
        raise TooManyDescendants(
            "isActive",
            path.url,
            f"cannot enable an object with {descendants} descendants "
            f"(the limit is {DESCENDANT_LIMIT - 1}; enable its schemas instead)",
        )
