"""The control plane's store: connections, the object tree and its settings, columns, tags,
object permissions, jobs and requests, in SQLite (default) or PostgreSQL, with a store version
that feeds the PDP revision. See docs/store.md."""

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
    read_registry,
)
from pdp.store.secrets import Secrets, redact
from pdp.store.store import KEEP, Reader, Store, SyncOutcome, Writer

__all__ = [
    "DEFAULT_FAIL_SAFE",
    "DEFAULT_SCHEDULE",
    "KEEP",
    "ColumnRecord",
    "ConnectionRecord",
    "ConnectionState",
    "DataRequest",
    "Job",
    "JobState",
    "JobTrigger",
    "JobType",
    "MergedRegistry",
    "ObjectRecord",
    "Page",
    "Permission",
    "PrincipalKind",
    "Reader",
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
    "read_registry",
    "redact",
]
