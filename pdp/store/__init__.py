"""The control plane's store: connections, the object tree and its settings, columns, tags,
object permissions, jobs and requests, in SQLite (default) or PostgreSQL, with a store version
that feeds the PDP revision. See docs/store.md."""

from pdp.store.base import KEEP
from pdp.store.errors import STORE_UNAVAILABLE
from pdp.store.model import (
    DEFAULT_FAIL_SAFE,
    DEFAULT_SCHEDULE,
    ColumnRecord,
    ConnectionRecord,
    ConnectionState,
    DataRequest,
    Job,
    JobState,
    JobTrigger,
    JobType,
    NewConnection,
    ObjectRecord,
    Page,
    Permission,
    PrincipalKind,
    RequestKind,
    RequestState,
    Role,
)
from pdp.store.registry import (
    MergedRegistry,
    StoreRegistry,
    compile_registry,
    merge_registries,
    not_governed_in_trino,
    read_registry,
)
from pdp.store.secrets import References, Secrets, redact
from pdp.store.store import Reader, Store, SyncOutcome, Writer

__all__ = [
    "DEFAULT_FAIL_SAFE",
    "DEFAULT_SCHEDULE",
    "KEEP",
    "STORE_UNAVAILABLE",
    "ColumnRecord",
    "ConnectionRecord",
    "ConnectionState",
    "DataRequest",
    "Job",
    "JobState",
    "JobTrigger",
    "JobType",
    "MergedRegistry",
    "NewConnection",
    "ObjectRecord",
    "Page",
    "Permission",
    "PrincipalKind",
    "Reader",
    "References",
    "RequestKind",
    "RequestState",
    "Role",
    "Secrets",
    "Store",
    "StoreRegistry",
    "SyncOutcome",
    "Writer",
    "compile_registry",
    "merge_registries",
    "not_governed_in_trino",
    "read_registry",
    "redact",
]
