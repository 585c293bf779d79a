"""Grant sync: the PDP's policy decisions pushed as native grants to Snowflake, Databricks Unity
Catalog and PostgreSQL. Planning is pure (desired, diff, roles, the platform dialects); reading
and applying go through one narrow seam per platform (targets)."""

from pdp.grants.config import GrantsConfig, TargetSpec, load_grants_config, parse_grants
from pdp.grants.desired import desired_state
from pdp.grants.diff import diff
from pdp.grants.errors import GrantSyncError, ReadError, StepError
from pdp.grants.model import Change, Current, Desired, Phase, Plan, Report, Securable, Step
from pdp.grants.syncer import GrantSyncer, Planned, apply, plan, syncer_from

__all__ = [
    "Change",
    "Current",
    "Desired",
    "GrantSyncError",
    "GrantSyncer",
    "GrantsConfig",
    "Phase",
    "Plan",
    "Planned",
    "ReadError",
    "Report",
    "Securable",
    "Step",
    "StepError",
    "TargetSpec",
    "apply",
    "desired_state",
    "diff",
    "load_grants_config",
    "parse_grants",
    "plan",
    "syncer_from",
]
