"""The pure decision core: no I/O, no clocks, no logging. Everything else feeds or serves it."""

from pdp.core.decide import decide, granting
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    Basis,
    CatalogRef,
    ColumnRef,
    Decision,
    FunctionRef,
    Identity,
    PolicyGrant,
    Registry,
    Request,
    SchemaRef,
    Settings,
    TableKey,
    TableRef,
    UserRef,
    View,
)
from pdp.core.operations import OPERATIONS, Check

__all__ = [
    "OPERATIONS",
    "Access",
    "AccessGrantMapping",
    "Basis",
    "CatalogRef",
    "Check",
    "ColumnRef",
    "Decision",
    "FunctionRef",
    "Identity",
    "PolicyGrant",
    "Registry",
    "Request",
    "SchemaRef",
    "Settings",
    "TableKey",
    "TableRef",
    "UserRef",
    "View",
    "decide",
    "granting",
]
