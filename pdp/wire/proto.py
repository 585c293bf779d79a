"""Core values <-> protobuf messages, shared by the PDP server and its clients."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from pdp.api import pb
from pdp.core.model import (
    DEFAULT_MAPPING,
    Access,
    AccessGrantMapping,
    CatalogRef,
    ColumnRef,
    Decision,
    FunctionRef,
    Identity,
    MaskKind,
    MaskRule,
    PolicyGrant,
    PolicyGrants,
    Registry,
    Request,
    Resource,
    Retargeted,
    SchemaRef,
    SessionPropertyRef,
    Settings,
    TableKey,
    TableRef,
    Targeted,
    UserRef,
    View,
    fold,
    table_key,
)
from pdp.policy.delta import RevisionDelta

Grants = Mapping[TableKey, tuple[PolicyGrant, ...]]


def identity_to_pb(identity: Identity) -> pb.Identity:
    return pb.Identity(user=identity.user, groups=sorted(identity.groups))


def identity_from_pb(message: pb.Identity) -> Identity:
    return Identity(message.user, frozenset(message.groups))


def resource_from_pb(message: pb.Resource) -> Resource | None:
    match message.WhichOneof("kind"):
        case "catalog":
            return CatalogRef(message.catalog.name)
        case "schema":
            return SchemaRef(message.schema.catalog, message.schema.schema)
        case "table":
            t = message.table
            return TableRef(t.catalog, t.schema, t.table)
        case "column":
            c = message.column
            return ColumnRef(c.catalog, c.schema, c.table, c.column)
        case "function":
            f = message.function
            return FunctionRef(f.catalog, f.schema, f.function)
        case "user":
            return UserRef(message.user.user)
        case "session_property":
            return SessionPropertyRef(
                message.session_property.name, message.session_property.catalog
            )
    return None


def request_from_pb(message: pb.DecideRequest) -> Request:
    return Request(
        identity_from_pb(message.identity),
        message.operation,
        resource_from_pb(message.resource) if message.HasField("resource") else None,
        resource_from_pb(message.target) if message.HasField("target") else None,
    )


def decision_to_pb(decision: Decision) -> pb.Decision:
    return pb.Decision(
        allowed=decision.allowed,
        rule=decision.rule.value,
        reason=decision.reason,
        policies=list(decision.policies),
    )


def mapping_to_pb(mapping: AccessGrantMapping) -> pb.AccessGrantMapping:
    order = list(Access)
    return pb.AccessGrantMapping(
        read=sorted(mapping.read, key=order.index), write=sorted(mapping.write, key=order.index)
    )


def mapping_from_pb(message: pb.AccessGrantMapping) -> AccessGrantMapping:
    return AccessGrantMapping(
        read=frozenset(map(Access, message.read)), write=frozenset(map(Access, message.write))
    )


def _table(key: TableKey) -> pb.Table:
    return pb.Table(catalog=key[0], schema=key[1], table=key[2])


def registry_to_pb(revision: str, registry: Registry, mapping: AccessGrantMapping) -> pb.Registry:
    order = sorted(registry.tables)
    return pb.Registry(
        revision=revision,
        tables=[pb.Table(catalog=c, schema=s, table=t) for c, s, t in order],
        mapping=mapping_to_pb(mapping),
        columns=[
            pb.TableColumns(
                table=_table(key),
                columns=[
                    pb.ColumnTags(column=name, tags=sorted(tags))
                    for name, tags in sorted(columns.items())
                ],
            )
            for key, columns in sorted(registry.columns.items())
        ],
        masks=[
            pb.MaskRule(
                policy=rule.policy,
                kind=rule.kind.value,
                columns=sorted(rule.columns),
                tags=sorted(rule.tags),
                constant_json=orjson.dumps(rule.value).decode() if rule.value is not None else "",
                count=rule.count,
                tables=[_table(k) for k in keys],
                except_owners=rule.except_owners,
            )
            for rule, keys in _by_rule(registry.masks).items()
        ],
        row_filters=[
            pb.RowFilterTables(policy=name, tables=[_table(k) for k in keys])
            for name, keys in _by_rule(registry.filters).items()
        ],
        incomplete=not registry.complete,
        policies=_targets_to_pb(registry, order),
    )


def _targets_to_pb(registry: Registry, order: list[TableKey]) -> list[pb.PolicyTargets]:
    """Each policy's tables, a schema it targets whole as that schema's position."""
    position = {key: i for i, key in enumerate(order)}
    schemas = {schema: i for i, schema in enumerate(dict.fromkeys(k[:2] for k in order))}
    messages = []
    for grant, tables in registry.policies:
        whole, single = registry.split(tables)
        messages.append(
            pb.PolicyTargets(
                policy=grant.policy,
                access=grant.access,
                schemas=sorted(schemas[s] for s in whole),
                tables=sorted(position[k] for k in single),
            )
        )
    return messages


def _targets_from_pb(
    messages: Iterable[pb.PolicyTargets], order: list[TableKey], registry: Registry
) -> list[Targeted]:
    schemas = [registry.by_schema[s] for s in dict.fromkeys(k[:2] for k in order)]
    return [
        (
            PolicyGrant(m.policy, Access(m.access)),
            frozenset().union(*[schemas[i] for i in m.schemas], [order[i] for i in m.tables]),
        )
        for m in messages
    ]


def registry_from_pb(message: pb.Registry) -> tuple[Registry, AccessGrantMapping]:
    """Raises ValueError when the message is inconsistent (a policy naming a position that
    `tables` does not have)."""
    order = [table_key(t.catalog, t.schema, t.table) for t in message.tables]
    keys = set(order)
    columns = {
        table_key(c.table.catalog, c.table.schema, c.table.table): {
            col.column: frozenset(col.tags) for col in c.columns
        }
        for c in message.columns
    }
    masks: defaultdict[TableKey, list[MaskRule]] = defaultdict(list)
    for m in message.masks:
        rule = MaskRule(
            policy=m.policy,
            kind=MaskKind(m.kind),
            columns=frozenset(m.columns),
            tags=frozenset(m.tags),
            value=orjson.loads(m.constant_json) if m.constant_json else None,
            count=m.count,
            except_owners=m.except_owners,
        )
        for t in m.tables:
            masks[table_key(t.catalog, t.schema, t.table)].append(rule)
    filters: defaultdict[TableKey, list[str]] = defaultdict(list)
    for f in message.row_filters:
        for t in f.tables:
            filters[table_key(t.catalog, t.schema, t.table)].append(f.policy)
    registry = Registry.of(
        keys,
        columns,
        {k: tuple(v) for k, v in masks.items()},
        {k: tuple(v) for k, v in filters.items()},
        complete=not message.incomplete,
    )
    try:
        targeted = _targets_from_pb(message.policies, order, registry)
    except IndexError:
        raise ValueError("a policy of the registry names a table it does not list") from None
    return dataclasses.replace(registry, policies=tuple(targeted)), mapping_from_pb(message.mapping)


def _by_rule(per_table: Mapping[TableKey, tuple[Any, ...]]) -> dict[Any, list[TableKey]]:
    """Each rule once, with the tables it covers (in table order; rules in first-seen order)."""
    tables: dict[Any, list[TableKey]] = {}
    for key, rules in sorted(per_table.items()):
        for rule in rules:
            tables.setdefault(rule, []).append(key)
    return tables


def entitlements_to_pb(
    revision: str,
    policies: Iterable[int] = (),
    mask_policies: frozenset[str] = frozenset(),
    filters: Mapping[str, str] | None = None,
    owned: frozenset[TableKey] = frozenset(),
) -> pb.Entitlements:
    """`policies`: the positions in the registry's `policies` of those that apply to the user."""
    return pb.Entitlements(
        revision=revision,
        policies=policies,
        mask_policies=sorted(mask_policies),
        row_filters=[
            pb.RowFilter(policy=name, expression=sql)
            for name, sql in sorted((filters or {}).items())
        ],
        owned_tables=[_table(k) for k in sorted(owned)],
    )


def table_grants_to_pb(grants: Mapping[TableKey, tuple[PolicyGrant, ...]]) -> list[pb.TableGrant]:
    """The per-table form, for sidecars before compact entitlements."""
    return [
        pb.TableGrant(
            table=_table(key),
            grants=[pb.PolicyGrant(policy=g.policy, access=g.access) for g in grants[key]],
        )
        for key in sorted(grants)
    ]


def table_grants_from_pb(message: pb.Entitlements) -> dict[TableKey, tuple[PolicyGrant, ...]]:
    """The per-table form, from a PDP (or a saved state) before compact entitlements."""
    return {
        table_key(g.table.catalog, g.table.schema, g.table.table): tuple(
            PolicyGrant(p.policy, Access(p.access)) for p in g.grants
        )
        for g in message.tables
    }


def view_to_pb(
    revision: str, view: View, position: Mapping[str, int] | None = None
) -> pb.Entitlements:
    """What a view was built from, its policies by name at their `position` in a registry's
    `policies` (`Registry.positions`: its own registry's by default, or the one a revision's
    delta patched it into)."""
    grants = view.grants
    held = grants.policies if isinstance(grants, PolicyGrants) else ()
    if position is None:
        position = view.registry.positions()
    # (a policy the registry does not list, which a correct view never holds, is left out:
    # never more access than the view gave)
    kept = [position[g.policy] for g, _ in held if g.policy in position]
    return entitlements_to_pb(revision, kept, view.mask_policies, view.filters, view.owned)


def data_policies_from_pb(message: pb.Entitlements) -> tuple[frozenset[str], dict[str, str]]:
    """The user's mask policy names and rendered row filters."""
    return frozenset(message.mask_policies), {f.policy: f.expression for f in message.row_filters}


def owned_from_pb(message: pb.Entitlements) -> frozenset[TableKey]:
    """The data sources the user owns (owner-exempt masks skip them)."""
    return frozenset(table_key(t.catalog, t.schema, t.table) for t in message.owned_tables)


def grants_from_pb(message: pb.Entitlements, registry: Registry) -> Grants:
    """A user's grants, compact or per table (from a PDP or saved state before compact
    entitlements). Raises ValueError when a policy's position is not in the registry."""
    if message.tables:
        return table_grants_from_pb(message)
    try:
        return registry.grants(message.policies)
    except IndexError:
        raise ValueError("the entitlements name a policy the registry does not list") from None


def view_from_pb(message: pb.Entitlements, settings: Settings, registry: Registry) -> View:
    """A user's view from their entitlements and the registry of the same revision (raises
    ValueError when the message names a policy the registry does not list)."""
    masks, filters = data_policies_from_pb(message)
    grants = grants_from_pb(message, registry)
    return View(settings, registry, grants, masks, filters, owned_from_pb(message))


def delta_to_pb(delta: RevisionDelta) -> pb.RevisionDelta:
    return pb.RevisionDelta(
        previous=delta.previous,
        users=sorted(delta.users),
        groups=sorted(delta.groups),
        tables=[_table(key) for key in sorted(delta.tables)],
        registry=registry_to_pb("", delta.entries, DEFAULT_MAPPING) if delta.tables else None,
        policies=[
            pb.RetargetedPolicy(
                position=p.position,
                policy=p.grant.policy,
                access=p.grant.access,
                schemas=[pb.Schema(catalog=c, schema=s) for c, s in sorted(p.schemas)],
                tables=[_table(key) for key in sorted(p.tables)],
                gone=[_table(key) for key in sorted(p.gone)],
                relative=p.relative,
                count=p.count if p.count >= 0 else None,
            )
            for p in delta.policies
        ],
        reordered=delta.order is not None,
        order=delta.order or (),
    )


def delta_from_pb(message: pb.RevisionDelta) -> RevisionDelta:
    return RevisionDelta(
        message.previous,
        users=frozenset(message.users),
        groups=frozenset(message.groups),
        tables=frozenset(table_key(t.catalog, t.schema, t.table) for t in message.tables),
        entries=registry_from_pb(message.registry)[0],
        policies=tuple(
            Retargeted(
                p.position,
                PolicyGrant(p.policy, Access(p.access)),
                frozenset((fold(s.catalog), fold(s.schema)) for s in p.schemas),
                frozenset(table_key(t.catalog, t.schema, t.table) for t in p.tables),
                frozenset(table_key(t.catalog, t.schema, t.table) for t in p.gone),
                p.relative,
                p.count if p.HasField("count") else -1,
            )
            for p in message.policies
        ),
        order=tuple(message.order) if message.reordered else None,
    )
