"""A small world for the revision-delta tests: tables in three schemas of one Trino catalog,
group, attribute and user policies (by schema, tag and name), a mask by column tag and a row
filter by attribute, and the edits a revision brings (policy edits, directory changes, tables
added, dropped and tagged, the mapping). A real PDP service and a real sidecar `Answers`
follow it over loopback gRPC."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any

from pdp.core import decide
from pdp.core.datapolicy import parse_template, row_filters
from pdp.core.model import (
    Access,
    AccessGrantMapping,
    CatalogRef,
    ClusterSettings,
    Identity,
    MaskKind,
    Request,
    SchemaRef,
    View,
)
from pdp.policy import DataSource, DirectoryUser, Policy, PolicySnapshot, Revisions, Technology
from pdp.policy.model import Audience, MaskingPolicy, RowFilterPolicy, Targets
from pdp.service.server import PdpServicer, start_server
from pdp.wire.datapolicy import row_filters_answer, row_filters_key
from pdp.wire.trino import decode_document, single_key
from sidecar.answers import Answers
from sidecar.datapolicies import answer_row_filters
from sidecar.pdp_client import PdpClient

CATALOG = "hive"
SCHEMAS = ("s0", "s1", "s2")
NAMES = ("t0", "t1", "t2", "t3")
GROUPS = ("g0", "g1", "g2", "g3")
USERS = ("u0", "u1", "u2", "u3", "u4")
SITES = ("paris", "oslo")
CLUSTER = ClusterSettings()
MASK = MaskingPolicy(
    "pii-hidden",
    MaskKind.NULL,
    Targets(everything=True),
    column_tags=frozenset({"pii"}),
    audience=Audience(groups=frozenset({"g0"})),  # everyone except g0
)
WHERE = "site IN @attribute(site)"
ROW_FILTER = RowFilterPolicy(
    "by-site", Targets(schemas=frozenset({"c.hive.s0"})), WHERE, parse_template(WHERE)
)
# Identities as Trino sends them: some with groups of their own, one outside the directory.
IDENTITIES = (
    Identity("u0"),
    Identity("u1"),
    Identity("u2", frozenset({"g3"})),
    Identity("u3"),
    Identity("u4"),
    Identity("zed", frozenset({"g1"})),
)


@dataclass(frozen=True)
class Table:
    tags: frozenset[str] = frozenset()
    pii: bool = False  # has a column tagged pii


@dataclass
class World:
    """The editable state; `snapshot(revision)` compiles it."""

    tables: dict[tuple[str, str], Table] = field(
        default_factory=lambda: {(s, n): Table() for s in SCHEMAS for n in NAMES[:2]}
    )
    # one policy per group: (schemas, tags, access)
    grants: dict[str, tuple[frozenset[str], frozenset[str], Access]] = field(
        default_factory=lambda: {
            "g0": (frozenset({"s0"}), frozenset(), Access.READ),
            "g1": (frozenset({"s1"}), frozenset(), Access.WRITE),
            "g2": (frozenset(), frozenset({"eu"}), Access.READ),
            "g3": (frozenset({"s2"}), frozenset(), Access.READ),
        }
    )
    groups: dict[str, frozenset[str]] = field(
        default_factory=lambda: {
            "u0": frozenset({"g0"}),
            "u1": frozenset({"g1"}),
            "u2": frozenset({"g0", "g2"}),
            "u3": frozenset(),
            "u4": frozenset({"g1"}),
        }
    )
    sites: dict[str, frozenset[str]] = field(
        default_factory=lambda: {"u0": frozenset({"paris"}), "u3": frozenset({"oslo"})}
    )
    wide_mapping: bool = False  # READ policies also grant WRITE

    def snapshot(self, revision: str) -> PolicySnapshot:
        sources = [
            DataSource(
                "c",
                Technology.TRINO,
                CATALOG,
                schema,
                name,
                tags=table.tags,
                trino_catalog=CATALOG,
                columns=(("email", frozenset({"pii"})),) if table.pii else (),
            )
            for (schema, name), table in self.tables.items()
        ]
        policies = [
            Policy(
                f"{group}-policy",
                access,
                groups=frozenset({group}),
                schemas=frozenset(f"c.hive.{s}" for s in schemas),
                tags=tags,
            )
            for group, (schemas, tags, access) in self.grants.items()
        ]
        policies.append(
            Policy(
                "paris",
                Access.READ,
                attributes={"site": frozenset({"paris"})},
                tags=frozenset({"eu"}),
            )
        )
        policies.append(
            Policy("u3-own", Access.WRITE, users=frozenset({"u3"}), tags=frozenset({"own"}))
        )
        # by name; and one whose conditions all must hold (nobody at first: u2 is in g2, u0
        # in paris), so that its group's members see none of its tables
        names = frozenset({"c.hive.s1.t0", "c.hive.s2.t2", "c.hive.s1.t3"})
        named = Policy("u0-named", Access.READ, users=frozenset({"u0"}), data_sources=names)
        policies.append(named)
        policies.append(
            Policy(
                "g2-in-paris",
                Access.READ,
                groups=frozenset({"g2"}),
                attributes={"site": frozenset({"paris"})},
                match_all=True,
                schemas=frozenset({"c.hive.s1"}),
                data_sources=frozenset({"c.hive.s2.t3"}),
            )
        )
        directory = {
            user: DirectoryUser(
                user,
                self.groups.get(user, frozenset()),
                {"site": sites} if (sites := self.sites.get(user)) else {},
            )
            for user in USERS
        }
        mapping = AccessGrantMapping(read=frozenset({Access.READ, Access.WRITE}))
        return PolicySnapshot.compile(
            revision,
            sources,
            policies,
            directory,
            mapping if self.wide_mapping else AccessGrantMapping(),
            masking=[MASK],
            row_filters=[ROW_FILTER],
        )


def edit(world: World, change: tuple[Any, ...]) -> None:
    """Apply one generated change (see tests/sidecar/test_revision_delta.py)."""
    match change:
        case ("policy", group, schemas, tags, access):
            world.grants[group] = (schemas, tags, access)
        case ("unpolicy", group):  # a "policy" change for it adds it again, last
            world.grants.pop(group, None)
        case ("groups", user, groups):
            world.groups[user] = groups
        case ("site", user, sites):
            world.sites[user] = sites
        case ("add", schema, name, tags, pii):
            world.tables[schema, name] = Table(tags, pii)
        case ("drop", index):
            if world.tables:
                del world.tables[sorted(world.tables)[index % len(world.tables)]]
        case ("tag", index, tags, pii):
            if world.tables:
                key = sorted(world.tables)[index % len(world.tables)]
                world.tables[key] = Table(tags, pii)
        case ("mapping", wide):
            world.wide_mapping = wide


def body(identity: Identity, operation: str, resource: dict[str, Any]) -> dict[str, Any]:
    who = {"user": identity.user, "groups": sorted(identity.groups)}
    action = {"operation": operation, "resource": resource}
    return {"input": {"context": {"identity": who}, "action": action}}


def table_body(identity: Identity, operation: str, schema: str, name: str) -> dict[str, Any]:
    table = {"catalogName": CATALOG, "schemaName": schema, "tableName": name}
    return body(identity, operation, {"table": table})


def requests(identity: Identity) -> list[tuple[Request, Hashable | None]]:
    """What the checks ask, each under the key the sidecar would cache it by: the fast key of
    a body for some, the key derived from the request for the others."""
    asked: list[tuple[Request, Hashable | None]] = []
    for schema in SCHEMAS:
        for name in NAMES:
            for operation in ("SelectFromColumns", "InsertIntoTable"):
                document = table_body(identity, operation, schema, name)
                fast = (name, operation) in {("t0", "SelectFromColumns"), ("t2", "InsertIntoTable")}
                asked.append(
                    (decode_document(document).request(), single_key(document) if fast else None)
                )
        asked.append((Request(identity, "ShowTables", SchemaRef(CATALOG, schema)), None))
        asked.append((Request(identity, "DropSchema", SchemaRef(CATALOG, schema)), None))
    document = body(identity, "ShowSchemas", {"catalog": {"name": CATALOG}})
    asked.append((decode_document(document).request(), single_key(document)))
    asked.append((Request(identity, "AccessCatalog", CatalogRef(CATALOG)), None))
    return asked


def fresh_view(snapshot: PolicySnapshot, identity: Identity) -> View:
    return snapshot.view(CLUSTER.effective(snapshot.mapping), identity)


class Follower:
    """A PDP service publishing the world's revisions and a sidecar's Answers following them
    over its real watch stream; `asked` maps every cache key used to its request."""

    def __init__(self, revisions: Revisions, answers: Answers) -> None:
        self.revisions, self.answers = revisions, answers
        self.asked: dict[Hashable, Request] = {}
        self.answer_keys: dict[Hashable, tuple[Identity, tuple[str, str, str]]] = {}
        self.count = 1

    @property
    def snapshot(self) -> PolicySnapshot:
        return self.revisions.current

    def publish(self, world: World) -> str:
        self.count += 1
        revision = f"r{self.count}"
        self.revisions.publish(world.snapshot(revision))
        return revision

    async def caught_up(self) -> None:
        revision = self.snapshot.revision
        for _ in range(500):
            if self.answers.revision == revision:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the sidecar did not reach {revision}")

    async def ask_everything(self) -> list[str]:
        """Every identity asks everything (filling the caches); the answers that differ from
        a fresh decision on the current snapshot."""
        wrong = []
        snapshot = self.snapshot
        for identity in IDENTITIES:
            expected_view = fresh_view(snapshot, identity)
            for request, key in requests(identity):
                got = await self.answers.decide(request, key)
                self.asked[request_key(request, key)] = request
                if got != decide(expected_view, request):
                    wrong.append(f"{request} answered {got}")
            for schema in SCHEMAS:
                table = (CATALOG, schema, "t0")
                document = table_body(identity, "GetRowFilters", schema, "t0")
                key = row_filters_key(document)
                self.answer_keys[key] = (identity, table)
                got_answer = await answer_row_filters(self.answers, identity, table, key)
                if got_answer != row_filters_answer(row_filters(expected_view, identity, table)):
                    wrong.append(f"row filters of {identity} on {table}: {got_answer!r}")
        return wrong

    def wrong_in_memory(self) -> list[str]:
        """What the sidecar holds (decisions, data-policy answers, views) that differs from
        the current snapshot, without asking anything."""
        snapshot, answers = self.snapshot, self.answers
        wrong = []
        for key, decision in list(answers._decisions.items()):
            request = self.asked[key]
            fresh = decide(fresh_view(snapshot, request.identity), request)
            if decision != fresh:
                wrong.append(f"cached {decision} for {request}, fresh {fresh}")
        for key, answer in list(answers._data_answers.items()):
            identity, table = self.answer_keys[key]
            fresh_answer = row_filters_answer(
                row_filters(fresh_view(snapshot, identity), identity, table)
            )
            if answer != fresh_answer:
                wrong.append(
                    f"cached row filters {answer!r} for {identity}, fresh {fresh_answer!r}"
                )
        for identity, view in list(answers._views.items()):
            fresh_one = fresh_view(snapshot, identity)
            if _personal(view) != _personal(fresh_one) or (
                answers.has_view(identity) and view.registry != fresh_one.registry
            ):
                wrong.append(f"kept view of {identity} differs from a fresh one")
        return wrong


def request_key(request: Request, key: Hashable | None) -> Hashable:
    if key is not None:
        return key
    return (request.identity, request.operation, request.resource, request.target)


def _personal(view: View) -> tuple[Any, ...]:
    grants = {k: v for k, v in view.grants.items()}
    return grants, view.mask_policies, dict(view.filters), view.owned, view.settings


@contextlib.asynccontextmanager
async def following(world: World) -> AsyncIterator[Follower]:
    """A PDP service on loopback serving `world` at r1, and Answers watching it."""
    revisions = Revisions(world.snapshot("r1"))
    server, port = await start_server(PdpServicer(revisions, lambda: CLUSTER), "127.0.0.1:0")
    client = PdpClient(f"127.0.0.1:{port}", timeout=5.0)
    answers = Answers(lambda: CLUSTER, client)
    watch = asyncio.create_task(answers.watch())
    follower = Follower(revisions, answers)
    try:
        await follower.caught_up()
        yield follower
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await client.close()
        await server.stop(None)


def replaced_policy(world: World, group: str, **fields: Any) -> None:
    schemas, tags, access = world.grants[group]
    values = {"schemas": schemas, "tags": tags, "access": access, **fields}
    world.grants[group] = (values["schemas"], values["tags"], values["access"])
