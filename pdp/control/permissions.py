"""Who may do what in the control plane (spec §4, permission table).

Global permissions come from the user directory (`permissions:` in users.yaml); Data Owner and
Infrastructure Admin are object permissions in the store, granted to a user or a group.

* register a connection: APPLICATION_ADMIN or CREATE_DATA_SOURCE;
* manage a connection (credentials, deregister, permissions): GOVERNANCE, or Infrastructure
  Admin on it;
* manage objects at or below a node (settings, sync, delete): the above, or Data Owner on the
  node or above;
* read the tree and the jobs: anyone holding any of these permissions anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pdp.objects.paths import ObjectPath
from pdp.policy import GlobalPermission
from pdp.store import PrincipalKind, Reader, Role

GOVERNANCE = GlobalPermission.GOVERNANCE
APPLICATION_ADMIN = GlobalPermission.APPLICATION_ADMIN
CREATE_DATA_SOURCE = GlobalPermission.CREATE_DATA_SOURCE


class Forbidden(Exception):
    """403: `permission` names what the caller lacks."""

    def __init__(self, permission: str, message: str, value: object = None) -> None:
        super().__init__(message)
        self.permission = permission
        self.message = message
        self.value = value


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    groups: frozenset[str] = frozenset()
    permissions: frozenset[GlobalPermission] = frozenset()

    def has(self, *wanted: GlobalPermission) -> bool:
        return any(p in self.permissions for p in wanted)


def _mine(caller: Caller, rows: Iterable[tuple[PrincipalKind, str]]) -> bool:
    return any(
        (kind is PrincipalKind.USER and name == caller.name)
        or (kind is PrincipalKind.GROUP and name in caller.groups)
        for kind, name in rows
    )


def roles_on(reader: Reader, caller: Caller, path: ObjectPath) -> set[tuple[Role, ObjectPath]]:
    """The caller's object roles on `path` and its ancestors."""
    return {
        (p.role, p.path)
        for p in reader.permissions(path, inherited=True)
        if _mine(caller, [(p.principal_kind, p.principal)])
    }


def require_register(caller: Caller) -> None:
    if not caller.has(APPLICATION_ADMIN, CREATE_DATA_SOURCE):
        raise Forbidden(
            "APPLICATION_ADMIN or CREATE_DATA_SOURCE",
            f"user {caller.name!r} may not register connections: "
            "APPLICATION_ADMIN or CREATE_DATA_SOURCE is needed",
            caller.name,
        )


def require_validate(caller: Caller) -> None:
    if not caller.has(APPLICATION_ADMIN, CREATE_DATA_SOURCE, GOVERNANCE):
        raise Forbidden(
            "APPLICATION_ADMIN, CREATE_DATA_SOURCE or GOVERNANCE",
            f"user {caller.name!r} may not validate connection credentials",
            caller.name,
        )


def require_manage_connection(reader: Reader, caller: Caller, key: str) -> None:
    if caller.has(GOVERNANCE):
        return
    root = ObjectPath(key)
    if any(role is Role.INFRASTRUCTURE_ADMIN for role, _ in roles_on(reader, caller, root)):
        return
    raise Forbidden(
        f"GOVERNANCE or InfrastructureAdmin on {key}",
        f"user {caller.name!r} may not manage connection {key!r}: "
        f"GOVERNANCE or Infrastructure Admin on {key!r} is needed",
        key,
    )


def require_manage_object(reader: Reader, caller: Caller, path: ObjectPath) -> None:
    if caller.has(GOVERNANCE):
        return
    for role, at in roles_on(reader, caller, path):
        if role is Role.DATA_OWNER or (role is Role.INFRASTRUCTURE_ADMIN and not at.names):
            return
    raise Forbidden(
        f"GOVERNANCE, InfrastructureAdmin on {path.key} or DataOwner on {path.url} or above",
        f"user {caller.name!r} may not manage {path.url!r}: GOVERNANCE, Infrastructure Admin "
        f"on {path.key!r} or Data Owner on {path.url!r} or above is needed",
        path.url,
    )


def owns(reader: Reader, caller: Caller, path: ObjectPath) -> bool:
    """Data Owner on `path` or a node above it, granted to the caller or one of their groups."""
    return any(role is Role.DATA_OWNER for role, _ in roles_on(reader, caller, path))


def require_request_owner(reader: Reader, caller: Caller, path: ObjectPath) -> None:
    """Data source requests go to the table's owners; governors may act on any of them."""
    if caller.has(GOVERNANCE) or owns(reader, caller, path):
        return
    raise Forbidden(
        f"DataOwner on {path.url} or above, or GOVERNANCE",
        f"user {caller.name!r} may not act on the requests of {path.url!r}: Data Owner on "
        f"{path.url!r} or above, or GOVERNANCE, is needed",
        path.url,
    )


def require_read(reader: Reader, caller: Caller) -> None:
    if caller.has(GOVERNANCE, APPLICATION_ADMIN, CREATE_DATA_SOURCE):
        return
    if not reader.holds_any_permission(caller.name, caller.groups):
        raise Forbidden(
            "any of GOVERNANCE, APPLICATION_ADMIN, CREATE_DATA_SOURCE, DataOwner or "
            "InfrastructureAdmin",
            f"user {caller.name!r} holds no control-plane permission",
            caller.name,
        )
