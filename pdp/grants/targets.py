"""Targets: one platform account each, joining a dialect (pure) to a client (I/O).

Each target reads its current grants, plans with the shared planner, and runs single steps.
Retries of 429/5xx-like failures happen here, per call, with bounded backoff."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from pdp.core.model import fold
from pdp.grants import (
    databricks,
    pgview,
    postgres,
    rls,
    sfpolicy,
    snowflake,
    tablepolicy,
    ucpolicy,
)
from pdp.grants.databricks import ApiClient, DatabricksDialect, Patch
from pdp.grants.dialect import Dialect
from pdp.grants.diff import diff
from pdp.grants.errors import ReadError, StepError
from pdp.grants.model import (
    Current,
    Desired,
    Plan,
    Principal,
    Privileges,
    Securable,
    State,
    Step,
)
from pdp.grants.postgres import PostgresDialect, PostgresSql
from pdp.grants.retry import Backoff
from pdp.grants.roles import plan_roles
from pdp.grants.session import Result, SqlSession
from pdp.grants.snowflake import SnowflakeDialect, SnowflakeSql


class Target(Protocol):
    name: str
    connections: frozenset[str]  # registry connections this account holds
    settle: float  # seconds a fresh read may lag behind a write (eventual consistency)

    @property
    def dialect(self) -> Dialect: ...

    def read(self, desired: Desired) -> Current: ...

    def plan(self, desired: Desired, current: Current) -> Plan: ...

    def run(self, step: Step) -> None: ...

    def close(self) -> None: ...


class RetryingSession:
    """A SqlSession whose calls are retried while `transient` says the failure may pass."""

    def __init__(
        self, session: SqlSession, backoff: Backoff, transient: Callable[[Exception], bool]
    ) -> None:
        self._session, self._backoff, self._transient = session, backoff, transient

    def execute(self, sql: str) -> Result:
        return self._backoff.call(lambda: self._session.execute(sql), self._transient)

    def close(self) -> None:
        self._session.close()


class SnowflakeTarget:
    settle = 0.0

    def __init__(
        self,
        name: str,
        connections: frozenset[str],
        session: SqlSession,
        dialect: SnowflakeDialect,
    ) -> None:
        self.name, self.connections, self.dialect = name, connections, dialect
        self._session = session
        self._policies: sfpolicy.Current | None = None  # as of the last read

    def read(self, desired: Desired) -> Current:
        current = snowflake.read_current(self._session, self.dialect)
        schema = self.dialect.policy_schema
        if schema is not None:
            self._policies = sfpolicy.read(
                self._session, schema, self.dialect.prefix, desired.enforced
            )
        return current

    def plan(self, desired: Desired, current: Current) -> Plan:
        schema, policies = self.dialect.policy_schema, self._policies
        if schema is None or policies is None:
            return plan_roles(self.name, desired, current, self.dialect, SnowflakeSql())
        prefix = self.dialect.prefix
        wanted, desired = _native(
            desired, prefix, policies.columns, sfpolicy.SNOWFLAKE, self.dialect
        )
        planned = plan_roles(self.name, desired, current, self.dialect, SnowflakeSql())
        return _merged(planned, sfpolicy.plan(schema, prefix, wanted, policies))

    def run(self, step: Step) -> None:
        self._session.execute(step.text)

    def close(self) -> None:
        self._session.close()


class PostgresTarget:
    """`connect(database)` opens a session in that database; "" is the maintenance database."""

    settle = 0.0

    def __init__(
        self,
        name: str,
        connections: frozenset[str],
        connect: Callable[[str], SqlSession],
        dialect: PostgresDialect,
    ) -> None:
        self.name, self.connections, self.dialect = name, connections, dialect
        self._connect = connect
        self._sessions: dict[str, SqlSession] = {}
        self._logins: frozenset[str] | None = None  # every role name, as of the last read
        self._security: dict[Securable, rls.TableSecurity] = {}  # as of the last read
        self._unmanageable: set[Securable] = set()  # tables whose row security we may not set
        self._columns: dict[Securable, dict[str, str]] = {}  # of masked tables, last read
        self._tables: set[Securable] = set()  # which of those are base tables
        self._views: dict[str, dict[str, pgview.Held]] = {}  # policy schema views by database

    def _session(self, database: str) -> SqlSession:
        if database not in self._sessions:
            self._sessions[database] = self._connect(database)
        return self._sessions[database]

    def read(self, desired: Desired) -> Current:
        roles = postgres.read_roles(self._session(""), self.dialect)
        self._logins = postgres.role_names(self._session(""))
        grants: dict[Principal, dict[Securable, Privileges]] = {}
        security: dict[Securable, rls.TableSecurity] = {}
        unmanageable: set[Securable] = set()
        columns: dict[Securable, dict[str, str]] = {}
        tables: set[Securable] = set()
        views: dict[str, dict[str, pgview.Held]] = {}
        schema, prefix = self.dialect.policy_schema, self.dialect.prefix
        for database in sorted({s.name[0] for s in desired.scope}):
            session = self._session(database)
            for role, held in postgres.read_database(session, database, self.dialect).items():
                grants.setdefault(role, {}).update(held)
            security.update(rls.read(session, database, prefix))
            governed = any(t.name[0] == database for t in desired.enforced)
            if governed:
                unmanageable |= rls.unmanageable(session, database)
                found, base = postgres.table_columns(session, database, desired.enforced)
                columns.update(found)
                tables |= base
            if schema is not None:
                held_views = pgview.read(session, database, schema, prefix)
                masked = any(
                    t.name[0] == database and any(pgview.masks(a) for a in f.values())
                    for t, f in desired.enforced.items()
                )
                if held_views is None and masked:
                    raise ReadError(
                        f"the policy schema {schema!r} does not exist in database "
                        f"{database!r} (or the sync login cannot see it)"
                    )
                views[database] = held_views or {}
        self._security, self._unmanageable = security, unmanageable
        self._columns, self._tables, self._views = columns, tables, views
        return Current(grants, roles.roles, roles.members)

    def plan(self, desired: Desired, current: Current) -> Plan:
        desired = _withhold_unmanageable(desired, self._unmanageable, self.dialect)
        prefix, schema = self.dialect.prefix, self.dialect.policy_schema
        view_steps: list[Step] = []
        shown: dict[Securable, Securable] = {}
        if schema is not None:
            views = pgview.plan_views(
                prefix,
                schema,
                desired.enforced,
                desired.grants,
                self._columns,
                self._security,
                frozenset(self._tables),
                current.grants,
            )
            desired = _with_views(desired, views, self.dialect)
            view_steps, recreated = pgview.plan(prefix, schema, views.wanted, self._views)
            current = replace(current, grants=_without(current.grants, recreated))
            shown = {t: w.view for t, w in views.wanted.items() if w.view not in views.withheld}
        desired = postgres.column_grants(desired, self._columns, shown)
        current = replace(current, grants=postgres.after_table_revokes(current.grants, desired))
        planned = plan_roles(self.name, desired, current, self.dialect, PostgresSql())
        governed = {
            t: rls.desired_policies(prefix, filtered)
            for t, f in desired.enforced.items()
            if (filtered := rls.filters(f))
        }
        security = [*rls.plan(prefix, governed, self._security), *view_steps]
        if security:
            steps = sorted((*planned.steps, *security), key=lambda step: step.phase)
            planned = replace(planned, steps=tuple(steps))
        if self._logins is None:
            return planned
        # GRANT <managed role> TO <login> fails when the login role does not exist: say so now.
        wanted = {m[1] for members in desired.members.values() for m in members}
        missing = sorted(wanted - self._logins)
        if not missing:
            return planned
        names = ", ".join(f'"{name}"' for name in missing)
        problem = (
            f"PostgreSQL has no role {names}: granting the managed role to it fails; "
            "create the login role(s) or map the user with `users:` in the target"
        )
        return replace(planned, failing=(*planned.failing, problem))

    def run(self, step: Step) -> None:
        self._session(step.where).execute(step.text)

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()


def _with_views(desired: Desired, views: pgview.Views, dialect: PostgresDialect) -> Desired:
    """`desired` with SELECT on each governed view (and USAGE on its schema) for its readers,
    the users a view is withheld from, and the notes on masked tables without a view."""
    grants = {principal: dict(held) for principal, held in desired.grants.items()}
    scope = set(desired.scope)
    for want in views.wanted.values():
        for principal in want.readers:
            grants[principal][want.view] = frozenset({"SELECT"})
            for parent, privilege in dialect.parents(want.view):
                grants[principal][parent] = grants[principal].get(parent, frozenset()) | {privilege}
                scope.add(parent)
        scope.add(want.view)
    withheld = [
        f"{principal} on {pgview.label(view)}: {why} (the masked columns stay refused on the table)"
        for view in sorted(views.withheld, key=lambda v: v.name)
        for principal, why in sorted(views.withheld[view].items())
    ]
    return replace(
        desired,
        grants=grants,
        scope=frozenset(scope),
        withheld=(*desired.withheld, *withheld),
        notes=(*desired.notes, *views.notes),
    )


def _without(grants: State, views: set[Securable]) -> State:
    """`grants` as they stand once `views` are dropped (and created again): none on them."""
    if not views:
        return grants
    return {p: {s: v for s, v in held.items() if s not in views} for p, held in grants.items()}


def _native(
    desired: Desired,
    prefix: str,
    columns: Mapping[Securable, Mapping[str, str] | None],
    flavor: tablepolicy.Flavor,
    dialect: Dialect,
) -> tuple[dict[Securable, list[tablepolicy.Wanted]], Desired]:
    """The native policies of every governed table, and `desired` without the grants of the
    users whose policies the table's actual columns make inexact."""
    wanted, blocked = {}, {}
    for table, enforced in desired.enforced.items():
        holders = frozenset(p for p, held in desired.grants.items() if table in held)
        found = tablepolicy.plan_table(prefix, table, enforced, holders, columns.get(table), flavor)
        wanted[table], blocked[table] = found
    return wanted, withhold(desired, {t: b for t, b in blocked.items() if b}, dialect)


def _merged(planned: Plan, steps: list[Step]) -> Plan:
    ordered = sorted((*planned.steps, *steps), key=lambda step: step.phase)
    return replace(planned, steps=tuple(ordered))


def _withhold_unmanageable(
    desired: Desired, tables: set[Securable], dialect: PostgresDialect
) -> Desired:
    """Fail closed where row security cannot be set up: the filtered users of a table the
    sync login does not own get no grant on it (revoked if they hold one), and the plan says
    why; users without a filter there keep theirs."""
    why = (
        "row-level security cannot be set up: "
        "the sync login does not own the table (nor belong to its owner's role)"
    )
    blocked = {
        t: dict.fromkeys(rls.filters(desired.enforced[t]), why)
        for t in desired.enforced.keys() & tables
    }
    return withhold(desired, blocked, dialect)


def withhold(
    desired: Desired, blocked: Mapping[Securable, Mapping[Principal, str]], dialect: Dialect
) -> Desired:
    """`desired` without the grants of each blocked principal on each blocked table (nor the
    parent privileges only those needed), which the plan lists as withheld with why."""
    if not blocked:
        return desired
    grants = {principal: dict(held) for principal, held in desired.grants.items()}
    withheld = list(desired.withheld)
    enforced = {t: dict(f) for t, f in desired.enforced.items()}
    for table in sorted(blocked, key=lambda t: t.name):
        label = f"{table.keyword} {'.'.join(snowflake.quote(p) for p in table.name)}"
        for principal, why in sorted(blocked[table].items()):
            held = grants.get(principal, {})
            held.pop(table, None)
            needed = {p for s in held if not s.container for p, _ in dialect.parents(s)}
            for parent, _ in dialect.parents(table):
                if parent not in needed:
                    held.pop(parent, None)
            enforced.get(table, {}).pop(principal, None)
            withheld.append(f"{principal} on {label}: {why}")
    enforced = {t: f for t, f in enforced.items() if f}
    return replace(desired, grants=grants, withheld=tuple(withheld), enforced=enforced)


class DatabricksTarget:
    """Unity Catalog through the official SDK's WorkspaceClient (passed in as `workspace`)."""

    def __init__(
        self,
        name: str,
        connections: frozenset[str],
        workspace: Any,
        dialect: DatabricksDialect,
        backoff: Backoff,
        workers: int = 4,
        settle: float = 5.0,
        warehouse: str = "",
    ) -> None:
        self.name, self.connections, self.dialect = name, connections, dialect
        self.settle = settle
        self._workspace, self._backoff, self._workers = workspace, backoff, workers
        self._warehouse = warehouse  # the SQL warehouse that runs the data policy statements
        self._policies: ucpolicy.Current | None = None  # as of the last read

    def _api(self) -> ApiClient:
        return self._workspace.api_client

    def read(self, desired: Desired) -> Current:
        managed = {fold(p): p for p in desired.principals}
        securables = sorted(desired.scope, key=lambda s: (s.name, s.family))

        def one(securable: Securable) -> Mapping[Principal, Privileges]:
            try:
                return self._backoff.call(
                    lambda: databricks.read_securable(self._api(), securable, managed),
                    databricks_transient,
                )
            except Exception as exc:
                if not _not_found(exc):
                    raise
                return {}  # a missing object holds no grants; granting on it will fail loudly

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            found = dict(zip(securables, pool.map(one, securables), strict=True))
        schema = self.dialect.policy_schema
        if schema is not None:
            self._policies = self._backoff.call(
                lambda: ucpolicy.read(self._api(), schema, self.dialect.prefix, desired.enforced),
                databricks_transient,
            )
        return Current(databricks.invert(found))

    def plan(self, desired: Desired, current: Current) -> Plan:
        schema, policies, prefix = self.dialect.policy_schema, self._policies, self.dialect.prefix
        wanted: dict[Securable, list[tablepolicy.Wanted]] = {}
        if schema is not None and policies is not None:
            wanted, desired = _native(
                desired, prefix, policies.columns, ucpolicy.UNITY, self.dialect
            )
        changes = diff(desired, current, self.dialect)
        planned = databricks.plan_patches(self.name, desired.revision, changes, desired.notes)
        planned = replace(planned, withheld=desired.withheld)
        if schema is None or policies is None:
            return planned
        return _merged(planned, ucpolicy.plan(schema, prefix, wanted, policies))

    def run(self, step: Step) -> None:
        if isinstance(step.payload, ucpolicy.Statement):
            self._execute(step.payload.sql)
            return
        patch = step.payload
        if not isinstance(patch, Patch):
            raise TypeError(f"{step.subject}: not a Databricks step")
        try:
            self._update(patch.securable, patch.changes)
        except Exception as exc:
            if databricks_transient(exc) or len(patch.changes) == 1 or not _bad_request(exc):
                raise
            # One unknown principal must not block everyone else's grant on the object.
            self._one_by_one(patch)

    def _execute(self, sql: str) -> None:
        """One statement on the warehouse; cancelled (and failed) if it has not finished within
        the wait, so a step never hangs."""
        from databricks.sdk.service.sql import ExecuteStatementRequestOnWaitTimeout, StatementState

        if not self._warehouse:
            raise StepError("the target names no warehouseId to run data policy statements on")
        response = self._backoff.call(
            lambda: self._workspace.statement_execution.execute_statement(
                sql,
                self._warehouse,
                wait_timeout="50s",
                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CANCEL,
            ),
            databricks_transient,
        )
        status = response.status
        if status is None or status.state is not StatementState.SUCCEEDED:
            error = status.error.message if status and status.error else "no result"
            state = status.state.value if status and status.state else "unknown"
            raise StepError(f"statement {state}: {error}")

    def _one_by_one(self, patch: Patch) -> None:
        failed = []
        for change in patch.changes:
            try:
                self._update(patch.securable, (change,))
            except Exception as exc:
                failed.append(f"{change['principal']}: {exc}")
        if failed:
            raise StepError("; ".join(failed), partial=len(failed) < len(patch.changes))

    def _update(self, securable: Securable, changes: tuple[Mapping[str, Any], ...]) -> None:
        from databricks.sdk.service.catalog import PermissionsChange, Privilege

        # Privilege(...) raises on a name the SDK does not know, instead of dropping it.
        typed = [
            PermissionsChange(
                principal=c["principal"],
                add=[Privilege(p) for p in c.get("add", ())] or None,
                remove=[Privilege(p) for p in c.get("remove", ())] or None,
            )
            for c in changes
        ]
        self._backoff.call(
            lambda: self._workspace.grants.update(
                securable.family, databricks.quoted_name(securable), changes=typed
            ),
            databricks_transient,
        )

    def close(self) -> None:
        return None  # the SDK's HTTP session needs no explicit close


def databricks_transient(exc: Exception) -> bool:
    from databricks.sdk.errors import platform

    retryable = (
        platform.TooManyRequests,
        platform.InternalError,
        platform.TemporarilyUnavailable,
        platform.DeadlineExceeded,
    )
    # TimeoutError: the SDK's own retry window for 429/503 ran out.
    return isinstance(exc, (*retryable, TimeoutError))


def _not_found(exc: Exception) -> bool:
    from databricks.sdk.errors import platform

    return isinstance(exc, platform.NotFound)


def _bad_request(exc: Exception) -> bool:
    from databricks.sdk.errors import platform

    return isinstance(exc, platform.BadRequest)


def snowflake_transient(exc: Exception) -> bool:
    from snowflake.connector import errors

    # The connector already retries HTTP 429/5xx itself; what reaches us as OperationalError is
    # a network-level failure worth another try. SQL errors (ProgrammingError) are final.
    return isinstance(exc, errors.OperationalError)


def postgres_transient(exc: Exception) -> bool:
    import psycopg.errors as pg

    return isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected | pg.LockNotAvailable)
