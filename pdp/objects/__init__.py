"""Pure rules of the object tree that connections bring: keys, paths, status inheritance, the
100,000-descendant limit, automatic tags and the object sync comparison. No I/O here; the
store (`pdp.store`) persists what these rules decide."""

from pdp.objects.errors import (
    Conflict,
    DuplicateKey,
    InvalidInput,
    InvalidKey,
    InvalidPath,
    InvalidTransition,
    LockHeld,
    NotFound,
    ObjectError,
    PlaintextSecret,
    TooManyDescendants,
)
from pdp.objects.keys import RESERVED_KEYS, check_connection_key, key_identity
from pdp.objects.paths import Kind, ObjectPath, format_dotted, parse_dotted
from pdp.objects.settings import (
    DESCENDANT_LIMIT,
    Effective,
    EffectiveSettings,
    Node,
    Origin,
    RemoteState,
    check_enable_limit,
    effective_settings,
    new_child_override,
)
from pdp.objects.tags import NEW_TAG, connection_tag

__all__ = [
    "DESCENDANT_LIMIT",
    "NEW_TAG",
    "RESERVED_KEYS",
    "Conflict",
    "DuplicateKey",
    "Effective",
    "EffectiveSettings",
    "InvalidInput",
    "InvalidKey",
    "InvalidPath",
    "InvalidTransition",
    "Kind",
    "LockHeld",
    "Node",
    "NotFound",
    "ObjectError",
    "ObjectPath",
    "Origin",
    "PlaintextSecret",
    "RemoteState",
    "TooManyDescendants",
    "check_connection_key",
    "check_enable_limit",
    "connection_tag",
    "effective_settings",
    "format_dotted",
    "key_identity",
    "new_child_override",
    "parse_dotted",
]
