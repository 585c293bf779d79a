"""The PDP's model: connections and data sources, subscription policies, the user directory,
compiled into an immutable snapshot per revision."""

from pdp.policy.model import (
    DataSource,
    DirectoryUser,
    GlobalPermission,
    ObjectType,
    Policy,
    PolicyStatus,
    Status,
    Subject,
    Technology,
)
from pdp.policy.revisions import Revisions
from pdp.policy.snapshot import PolicySnapshot

__all__ = [
    "DataSource",
    "DirectoryUser",
    "GlobalPermission",
    "ObjectType",
    "Policy",
    "PolicySnapshot",
    "PolicyStatus",
    "Revisions",
    "Status",
    "Subject",
    "Technology",
]
