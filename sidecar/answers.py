"""Decisions from memory: per-revision caches of the registry, of each user's view and of
decisions, filled from the PDP on a miss. When the revision changes, what the PDP's delta
(pdp.policy.delta) does not touch is kept; without a delta, everything is dropped."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import Cache, LRUCache

from pdp.collector import made_frozen
from pdp.core import decide
from pdp.core.model import (
    AccessGrantMapping,
    Basis,
    ClusterSettings,
    Decision,
    Identity,
    PolicyGrants,
    Registry,
    Request,
    Settings,
    View,
)
from pdp.core.operations import needs_grants
from pdp.core.readable import Readable, allowed_without_reason, readable
from pdp.policy.delta import RevisionDelta
from pdp.wire.trino import Key, request_of
from sidecar.bodykeys import BODY_BYTES
from sidecar.config import VIEW_GRANTS
from sidecar.pdp_client import PdpClient, PdpUnavailable
from sidecar.scope import Touched, answer_scope, decision_scope

STALENESS_CHECK_SECONDS = 0.25
# How soon the watch asks again after it broke: 0.05 s doubling to 0.25 s. An attempt while the
# PDP is away fails at once (no connection), so trying often costs nothing and finds the PDP
# as soon as it serves again.
WATCH_RETRY_FIRST, WATCH_RETRY_LONGEST = 0.05, 0.25
# Before switching to a revision whose delta names some of the users held, their new views are
# fetched for at most PREFETCH_SECONDS, or until the switch is prepared if that takes longer
# (then the worker switches anyway, dropping the rest):
# a small share of the revocation budget (100 ms from a change to the first deny).
PREFETCH_SECONDS = 0.05
PREFETCH_USERS = 256  # at most so many users' views fetched ahead (the most a bound lets in)
PREFETCH_CONCURRENCY = 16  # entitlement requests in flight at once during the prefetch
# A switch is prepared a chunk of views or cache entries at a time, and chunks follow one
# another for at most PREPARE_SLICE_SECONDS before the event loop serves the checks waiting:
# a check waits for the preparation about a millisecond, not the 3-5 ms of 256 views rebuilt.
PREPARE_CHUNK = 16
PREPARE_SLICE_SECONDS = 0.001
IDENTITIES = 65_536  # identities made once by (user, groups as sent); emptied when full

log = logging.getLogger(__name__)
EMPTY_REGISTRY = Registry()


BatchAnswer = tuple[bytes, str, int, int]
"""A batch body's encoded answer, its operation, the items allowed and the items asked."""


class Views(LRUCache):
    """The cached views by identity, least recently used out first, bounded both by their
    number (`users`) and by their weight (`View.size`, at most `grants`; a view heavier than
    that is still held, alone).

    Each is answered on `registry`, the one the worker holds. A switch to a revision that moves
    the registry keeps the views of the identities its delta does not touch as they are, on
    the registry before (`on`): each is rebuilt on the new one when it is next looked up
    (`get`, `[]`), at the cost of that one view, rather than all of them before the switch (2,000
    views took a worker 28-48 ms at every change). Before the next switch, the views still on
    an older registry are brought up to date (`refresh`), so a view is never more than one
    registry behind and at most two registries are alive."""

    def __init__(self, users: int, grants: int) -> None:
        super().__init__(grants, getsizeof=lambda view: min(view.size, grants))
        self.users = users
        self.registry: Registry | None = None
        self._position: dict[str, int] = {}  # registry's policies: name -> position

    def on(self, registry: Registry | None) -> None:
        """Answer on `registry` from now on; the views held on another are rebuilt on it as
        they are looked up. The caller has dropped those whose identities it changes."""
        if registry is not self.registry:
            self.registry = registry
            self._position = registry.positions() if registry is not None else {}

    def __getitem__(self, identity: Identity) -> View:
        view: View = LRUCache.__getitem__(self, identity)
        if view.registry is not self.registry:
            view = self[identity] = self._rebuilt(view)
        return view

    def get(self, identity: Identity, default: None = None) -> View | None:  # type: ignore[override]
        # LRUCache.get asks `in` and then `[]`: two lookups and a recency touch per check
        try:
            return self[identity]
        except KeyError:
            return default

    def behind(self) -> list[Identity]:
        """The identities whose views are held on another registry than `registry`."""
        held = functools.partial(Cache.__getitem__, self)  # `Cache`'s: no recency touch
        return [identity for identity in self if held(identity).registry is not self.registry]

    def held(self) -> dict[Identity, View]:
        """Every view as it is held (one behind not rebuilt, its recency not touched)."""
        return {identity: Cache.__getitem__(self, identity) for identity in self}

    def refresh(self, identity: Identity) -> None:
        """Rebuild the view of `identity` on `registry` if it is held on another, leaving
        its place in the least-recently-used order as it is unless it grew (a policy of its
        retargeted to more tables): then room is made as for any view stored, and it counts
        as used now (`Cache`'s store would evict to make room, this very entry first when
        it is the least recently used, and store it again outside the order). Nothing when
        it is no longer held (evicted to make room for another brought up before it)."""
        try:
            view = Cache.__getitem__(self, identity)  # `Cache`'s: no recency touch
        except KeyError:
            return
        if view.registry is not self.registry:
            rebuilt = self._rebuilt(view)
            if self.getsizeof(rebuilt) <= self.getsizeof(view):  # nothing to evict
                Cache.__setitem__(self, identity, rebuilt)
            else:
                self[identity] = rebuilt

    def _rebuilt(self, view: View) -> View:
        assert self.registry is not None  # views are held only once a registry is
        return _rebuilt(view, self.registry, self._position)

    def __setitem__(self, identity: Identity, view: View) -> None:
        super().__setitem__(identity, view)
        while len(self) > self.users:
            self.popitem()


class BatchAnswers:
    """Whole answers to batch bodies by the body (queryId aside), each with its revision,
    oldest out first: at most `limit` of them and `max_bytes` of bodies and answers together
    (a batch body may list thousands of tables: their number alone bounds no memory)."""

    def __init__(self, limit: int, max_bytes: int = BODY_BYTES) -> None:
        self.limit, self.max_bytes, self.bytes = limit, max_bytes, 0
        self._held: OrderedDict[bytes, tuple[str, BatchAnswer]] = OrderedDict()
        self.get = self._held.get

    def put(self, body: bytes, revision: str, answer: BatchAnswer) -> None:
        held = self._held
        old = held.pop(body, None)
        if old is not None:
            self.bytes -= len(body) + len(old[1][0])
        self.bytes += len(body) + len(answer[0])
        self.trim(self.limit - 1)
        held[body] = (revision, answer)

    def trim(self, limit: int) -> None:
        """Drop the oldest until at most `limit` are held within the bytes bound."""
        held = self._held
        while held and (len(held) > limit or self.bytes > self.max_bytes):
            body, (_, answer) = held.popitem(last=False)
            self.bytes -= len(body) + len(answer[0])

    def clear(self) -> None:
        self._held.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._held)


@dataclass(frozen=True)
class Prepared:
    """A switch to a revision, prepared (`Answers._preparing`): what its delta touches, and
    the keys of the decisions and of the data-policy answers it drops."""

    touched: Touched
    doomed: list[list[Hashable]]


def _rebuilt(view: View, registry: Registry, position: Mapping[str, int]) -> View:
    """`view` on the patched `registry` (the user's policies and data policies are the same at
    both revisions; its policies are read by name at their `position` there)."""
    grants = view.grants
    if isinstance(grants, PolicyGrants):
        # the same policies, read in the patched list (one it no longer lists, which a view
        # kept never holds, is left out: never more access than it gave); kept as they are
        # when the list holds each of them unchanged, with what they found for the tables
        # asked so far (finding it again is the user's next checks' cost)
        held = [position[g.policy] for g, _ in grants.policies if g.policy in position]
        policies = registry.policies
        if len(held) != len(grants.policies) or any(
            policies[i] is not targeted for i, targeted in zip(held, grants.policies, strict=True)
        ):
            grants = registry.grants(held)
    return View(view.settings, registry, grants, view.mask_policies, view.filters, view.owned)


def request_key(request: Request) -> Hashable:
    """The decision cache's key of a request without a fast key from its body."""
    return (request.identity, request.operation, request.resource, request.target)


class Answers:
    def __init__(
        self,
        cluster: Callable[[], ClusterSettings],
        client: PdpClient,
        user_cache: int = 10_000,
        decision_cache: int = 200_000,
        max_stale: float | None = 300.0,
        view_grants: int = VIEW_GRANTS,
        prefetch_seconds: float = PREFETCH_SECONDS,
    ) -> None:
        self._cluster, self._client, self._max_stale = cluster, client, max_stale
        self._prefetch_seconds = prefetch_seconds  # 0: no prefetch, the views are dropped
        self.revision: str | None = None
        self._registry: tuple[Registry, AccessGrantMapping] | None = None
        # memory: by the number of users and by what their views hold
        self._views = Views(user_cache, view_grants)
        # Decisions in insertion order, evicted first-in first-out: a hit is one C-level dict
        # lookup, where an LRU's recency bookkeeping cost more than the whole rest of a cache
        # hit (profiled under wrk). Keys come from wire.single_key/batch_keys when the body has
        # a fast key, else from the decoded request.
        self._decisions: OrderedDict[Hashable, Decision] = OrderedDict()
        self._decision_limit = decision_cache
        self.cached: Callable[[Hashable], Decision | None] = self._decisions.get
        # Bare answers (allowed or not) by the same keys, kept and dropped like decisions and
        # bounded with them: those `allowed_now` made without a Decision, for a worker that
        # reads no reason.
        self._allowed: OrderedDict[Hashable, bool] = OrderedDict()
        # Encoded answers of the data-policy endpoints (row filters, masks), kept and dropped
        # like decisions; keys from sidecar.datapolicies, never with the queryId.
        self._data_answers: OrderedDict[Hashable, bytes] = OrderedDict()
        self.cached_answer: Callable[[Hashable], bytes | None] = self._data_answers.get
        # Whole answers to batch bodies answered from the decision cache (sidecar/app.py), kept
        # and dropped like decisions: a batch seen again is one lookup, not one per item, which a
        # full decision cache makes slow (its table no longer fits the processor's caches).
        # Each is held with its revision and served at that revision only.
        self._batch_answers = BatchAnswers(decision_cache)
        self._identities: dict[tuple[str, tuple[str, ...]], Identity] = {}
        # One Identity object per value (`_one`), the one the views are held by: a view lookup
        # with it matches by `is`, where an equal object is compared field by field by Python
        # code, twice (the LRU's lookup and its recency touch: about 0.5 us per check).
        self._one_by_value: dict[Identity, Identity] = {}
        self._inflight: dict[Identity, asyncio.Future[View]] = {}
        self._registry_fetch: asyncio.Future[tuple[str, Registry, AccessGrantMapping]] | None = None
        self.heard = time.monotonic()  # when the PDP last said anything on the watch
        # the last word heard before the watch broke; not connected until the first word
        self.lost_since: float | None = self.heard
        # The watch broke and has not been re-established: the PDP is known to be away, and a
        # check that needs it is denied at once rather than after the RPC timeout. (Not at
        # start: the first checks may arrive before the watch's first word.)
        self.away = False
        self._last_warning = 0.0
        self._generation = 0  # counts `reset`s: a prefetch across one is not switched to
        # The revision the watch is preparing to switch to (`_follow`), and its switch.
        self._switching: tuple[str, asyncio.Future[None]] | None = None
        # While a switch is prepared: the keys of the decisions, bare answers and data-policy
        # answers cached since, for the switch to look at (the preparation saw those before).
        self._noted: tuple[list[Hashable], list[Hashable], list[Hashable]] | None = None

    def cluster_settings(self) -> ClusterSettings:
        """The cluster's own settings in force (its properties and mapping files)."""
        return self._cluster()

    def sizes(self) -> dict[str, int]:
        return {
            "users": len(self._views),
            "decisions": len(self._decisions) + len(self._allowed),
            "dataPolicyAnswers": len(self._data_answers),
        }

    def reset(self, revision: str | None) -> None:
        """Forget everything learned at the previous revision (or cluster configuration)."""
        self._generation += 1
        self.revision = revision
        self._hold(None)
        self._registry_fetch = None  # one in flight is for the old revision: not waited for
        self._views.clear()
        self._decisions.clear()
        self._allowed.clear()
        self._data_answers.clear()
        self._batch_answers.clear()

    def advance(
        self,
        revision: str,
        delta: RevisionDelta | None,
        prefetched: Mapping[Identity, View] | None = None,
    ) -> None:
        """Move to `revision`, keeping what `delta` (what changed since the revision held)
        does not touch: the views of identities it does not name, the registry (patched with
        the delta's entries of the tables it names, the views kept rebuilt on it), the
        decisions and data-policy answers of identities and objects it does not name. What is
        kept is confirmed at `revision` by the PDP's delta. The views of the identities it
        names are dropped, or replaced by those `prefetched` at `revision` (built on the
        registry `_moved_registry` gave for this delta). Without a delta, or with one from
        another revision than the one held (a revision missed), everything is dropped
        (`reset`)."""
        moving = self._moving(revision, delta)
        if moving is None:
            return
        try:
            registry = made_frozen(self._moved_registry, self._registry, moving)
        except ValueError as exc:
            self._unfit(revision, exc)
            return
        preparing = self._preparing(moving, registry)
        while True:
            try:
                next(preparing)
            except StopIteration as done:
                prepared = done.value
                break
        self._switch(revision, moving, registry, prepared, prefetched or {})

    def _moving(self, revision: str, delta: RevisionDelta | None) -> RevisionDelta | None:
        """`delta` when it moves the revision held; otherwise None, everything dropped (`reset`):
        no delta, one too large to be worth it, or one from a revision not held."""
        if delta is None or delta.everything or delta.previous != self.revision:
            self.reset(revision)
            return None
        return delta

    def _unfit(self, revision: str, exc: ValueError) -> None:
        """The delta does not fit the registry held (`_moved_registry`): everything dropped."""
        log.warning("revision delta not applied (%s): caches dropped", exc)
        self.reset(revision)

    def _moved_registry(
        self, held: tuple[Registry, AccessGrantMapping] | None, delta: RevisionDelta
    ) -> tuple[Registry, AccessGrantMapping] | None:
        """`held` (the registry held when the move began: it runs in a thread) moved by the
        delta's entries and retargeted policies (the same object when the delta changes
        neither); None when none is held. Raises ValueError when the delta does not fit it."""
        if held is None or not (delta.tables or delta.policies or delta.order):
            return held
        old, mapping = held
        return old.patched(delta.tables, delta.entries, delta.policies, delta.order), mapping

    def _revision_caches(
        self,
    ) -> tuple[tuple[OrderedDict[Hashable, Any], Callable[[Any], Any]], ...]:
        """The caches a delta prunes, each with what scopes its keys: the decisions, the bare
        answers (keyed alike) and the data-policy answers, in `_noted`'s order."""
        return (
            (self._decisions, decision_scope),
            (self._allowed, decision_scope),
            (self._data_answers, answer_scope),
        )

    def _preparing(
        self,
        delta: RevisionDelta,
        registry: tuple[Registry, AccessGrantMapping] | None,
    ) -> Generator[None, None, Prepared]:
        """What the switch to the revision after `delta` needs that costs a pass over all that
        is held, prepared before it, yielding every PREPARE_CHUNK items (`_follow` serves the
        checks waiting between slices of chunks): when the registry moves to `registry`, the
        views still on the one before the registry held (not asked since the last switch)
        rebuilt on the one held, so that none falls two behind (`Views`); and the keys of the
        decisions and data-policy answers the delta touches. What is cached meanwhile is
        looked at by `_switch`."""
        touched = Touched(delta)
        self._noted = ([], [], [])  # what is cached from now on: looked at by the switch
        if registry is not self._registry:  # it moves: none may stay two registries behind
            views = self._views
            for n, identity in enumerate(views.behind(), 1):
                if not touched.identity(identity.user, identity.groups):
                    views.refresh(identity)  # not asked since the last switch
                if n % PREPARE_CHUNK == 0:
                    yield
        doomed: list[list[Hashable]] = []
        for cache, scope in self._revision_caches():
            found = []
            for n, key in enumerate(list(cache), 1):
                if touched.scope(scope(key)):
                    found.append(key)
                if n % PREPARE_CHUNK == 0:
                    yield
            doomed.append(found)
        return Prepared(touched, doomed)

    def _switch(
        self,
        revision: str,
        delta: RevisionDelta,
        registry: tuple[Registry, AccessGrantMapping] | None,
        prepared: Prepared,
        prefetched: Mapping[Identity, View],
    ) -> None:
        """Move to `revision` at once (no await): the registry given (the views the delta does
        not touch kept, each rebuilt on it when next asked: `Views`), those it touches replaced
        by `prefetched` or dropped, the decisions and answers it touches dropped; `prepared`
        (`_preparing`) brought up to what was cached while it was made."""
        self.revision = revision
        # whole-batch answers are served at their revision only: none is of use any more
        self._batch_answers.clear()
        touched = prepared.touched
        if delta.tables or delta.policies or delta.order:
            self._registry_fetch = None  # one in flight is for the old revision
        for identity in [i for i in self._views if touched.identity(i.user, i.groups)]:
            del self._views[identity]
        self._hold(registry)
        for identity, view in prefetched.items():
            if registry is not None and view.registry is registry[0]:
                self._views[identity] = view
        noted, self._noted = self._noted or ([], [], []), None
        for (cache, scope), found, later in zip(
            self._revision_caches(), prepared.doomed, noted, strict=True
        ):
            for key in found:
                cache.pop(key, None)
            for key in later:  # cached while the switch was prepared
                if touched.scope(scope(key)):
                    cache.pop(key, None)

    async def decide(self, request: Request, key: Hashable | None = None) -> Decision:
        """`key` identifies the request in the decision cache; by default it is derived from
        the request itself. It never includes the queryId."""
        key = request_key(request) if key is None else key
        decision = self.decided(request, key)
        if decision is not None:
            return decision
        try:
            view = await self._view(request.identity)
        except PdpUnavailable as exc:
            self._warn(
                f"denying {request.operation} for {request.identity.user!r}: PDP unavailable "
                f"and nothing cached ({exc})"
            )
            return Decision(False, Basis.PDP_UNAVAILABLE, str(exc))
        return self._decide_on(view, request, key)

    async def decide_all(
        self, requests: Sequence[Request], keys: Sequence[Hashable | None]
    ) -> list[Decision]:
        """The decisions of a batch's items (one user, one operation), each as `decide` gives
        it, with the user's view looked up once rather than once per item."""
        if not requests or not needs_grants(requests[0].operation):
            return [await self.decide(r, k) for r, k in zip(requests, keys, strict=True)]
        cached, decisions = self._decisions.get, []
        view: View | None = None
        for request, key in zip(requests, keys, strict=True):
            key = request_key(request) if key is None else key
            decision = cached(key)
            if decision is None:
                if view is None:
                    try:
                        view = await self._view(request.identity)
                    except PdpUnavailable:  # denied by `decide`, with its warning
                        decisions.append(await self.decide(request, key))
                        continue
                decision = self._decide_on(view, request, key)
            decisions.append(decision)
        return decisions

    def decided(self, request: Request, key: Hashable | None = None) -> Decision | None:
        """The decision if it needs no word from the PDP: cached, or decided now on what is at
        hand (the cluster settings, the user's cached view); None when `decide` must wait for
        the user's view. So a body never seen before is answered without a task or a wait."""
        key = request_key(request) if key is None else key
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        if not needs_grants(request.operation):
            # Identity checks depend on the cluster settings only: answer even without the PDP.
            decision = decide(View(self._cluster().properties, EMPTY_REGISTRY, {}), request)
            if decision.rule is Basis.UNKNOWN_OPERATION:
                self._warn(
                    f"denied {decision.reason} for {request.identity.user!r}: "
                    "a newer Trino than this sidecar knows?"
                )
            else:  # a change of the cluster settings resets the cache
                self._remember(key, decision)
            return decision
        view = self._views.get(request.identity)
        return None if view is None else self._decide_on(view, request, key)

    def cached_allowed(self, key: Hashable) -> bool | None:
        """Whether the request of `key` is allowed, if a bare answer or a decision holds it."""
        allowed = self._allowed.get(key)
        if allowed is None:
            decision = self._decisions.get(key)
            return None if decision is None else decision.allowed
        return allowed

    def identity(self, user: str, groups: tuple[str, ...]) -> Identity:
        """The Identity of a body's user and groups (strings, as sent), made once: the view
        cache then finds the same object every time, where a new one is built, its frozenset
        hashed and compared field by field by Python code (a third of looking a view up, about
        1 us per check of a new body). A value, so what it was made at never goes stale."""
        found = self._identities.get((user, groups))
        if found is None:
            if len(self._identities) >= IDENTITIES:
                self._identities.clear()
            found = self._identities[user, groups] = self._one(Identity(user, frozenset(groups)))
        return found

    def _one(self, identity: Identity) -> Identity:
        """The Identity object of `identity`'s value that `identity` (the memo) gives and the
        views are held by: the first one seen (bounded like the memo, emptied when full; an
        object made after that is equal, only slower to match)."""
        one = self._one_by_value
        if len(one) >= IDENTITIES and identity not in one:
            one.clear()
        return one.setdefault(identity, identity)

    def allowed_now(self, key: Key, names: tuple[str, ...]) -> bool | None:
        """`decided(request_of(key), key).allowed`, for a worker that never reads a decision's
        reason (no decision log, no compact endpoint's denial); `names` are the key's
        `resource_names`. What set lookups answer (pdp.core.readable: an operation every
        user may run, READ on a table, a catalog's or a schema's visibility) from the user's
        view at the current revision is remembered as a bare answer, without the Decision
        and its reason text that `decide` makes, nor a Request; anything else is decided by
        `decided`. None when `decide` must wait for the user's view. For a key that
        `cached_allowed` does not answer."""
        user, operation = key[0], key[2]
        view = None
        if needs_grants(operation):
            view = self._views.get(self.identity(user, key[1]))
            if view is not None and not self._current(view):
                view = None
        allowed = allowed_without_reason(view, user, operation, names)
        if allowed is None:
            request = request_of(key)
            assert request is not None  # `names` say it is
            decision = self.decided(request, key)
            return None if decision is None else decision.allowed
        if self._noted is not None:  # a switch is being prepared (`_preparing`)
            self._noted[1].append(key)
        self._make_room()
        self._allowed[key] = allowed
        return allowed

    def _decide_on(self, view: View, request: Request, key: Hashable) -> Decision:
        decision = decide(view, request)
        if self.revision is not None and view.registry is self._registry_now():
            self._remember(key, decision)
        return decision

    def _remember(self, key: Hashable, decision: Decision) -> None:
        if self._noted is not None:  # a switch is being prepared (`_preparing`)
            self._noted[0].append(key)
        self._make_room()
        self._decisions[key] = decision

    def _make_room(self) -> None:
        """Decisions and bare answers share the decision cache's bound: one more fits after
        this (the oldest of the fuller of the two out)."""
        decisions, bare = self._decisions, self._allowed
        if len(decisions) + len(bare) >= self._decision_limit:
            (decisions if len(decisions) >= len(bare) else bare).popitem(last=False)

    def cached_batch(self, key: bytes) -> BatchAnswer | None:
        held = self._batch_answers.get(key)
        return None if held is None or held[0] != self.revision else held[1]

    def remember_batch(self, key: bytes, answer: BatchAnswer) -> None:
        """Keep a batch body's answer, made just now from cached decisions alone: it is what
        they answer at this revision (the cache is dropped with them, and never served at
        another revision, whatever a revision keeps of the decisions)."""
        if self.revision is None:
            return
        self._batch_answers.put(key, self.revision, answer)

    def readable(self, identity: Identity) -> Readable | None:
        """What the user's cached view answers of READ on tables (pdp.core.readable: the
        `decide` of FilterTables without a Decision per table), or None when that view is not
        at hand at the current revision (`decide_all` then decides, fetching it if need be).
        It is derived from the view and goes with it."""
        view = self._views.get(identity)
        return None if view is None or not self._current(view) else readable(view, identity.user)

    def _current(self, view: View) -> bool:
        """Whether `view` is at the current revision (what it answers may be remembered)."""
        return self.revision is not None and view.registry is self._registry_now()

    def has_view(self, identity: Identity) -> bool:
        """Whether the user's view is at hand (deciding needs no call to the PDP)."""
        return identity in self._views

    def held_view(self, identity: Identity) -> View | None:
        """The user's view if it is at hand (no call to the PDP), else None."""
        return self._views.get(identity)

    async def view(self, identity: Identity) -> View:
        """The user's view at the current revision (raises PdpUnavailable)."""
        return await self._view(identity)

    def remember_answer(self, key: Hashable, view: View, answer: bytes) -> None:
        """Keep an encoded data-policy answer computed from `view`, if that view is current."""
        if self.revision is None or view.registry is not self._registry_now():
            return
        if self._noted is not None:  # a switch is being prepared (`_preparing`)
            self._noted[2].append(key)
        answers = self._data_answers
        if len(answers) >= self._decision_limit:
            answers.popitem(last=False)
        answers[key] = answer

    def _registry_now(self) -> Registry | None:
        return self._views.registry

    def _hold(self, registry: tuple[Registry, AccessGrantMapping] | None) -> None:
        """Hold `registry` (with its mapping): the views answer on it (`Views.on`)."""
        self._registry = registry
        self._views.on(registry[0] if registry is not None else None)

    async def _view(self, identity: Identity) -> View:
        view = self._views.get(identity)
        if view is not None:
            return view
        pending = self._inflight.get(identity)
        if pending is not None:  # single flight: one RPC per user however many checks wait
            revision = self.revision
            view = await asyncio.shield(pending)
            # a switch between the fetch's end and this waiter's turn may have dropped it
            return view if self.revision == revision else await self._view(identity)
        if self.away:
            raise PdpUnavailable("the PDP is away (its revision watch is broken)")
        future = asyncio.get_running_loop().create_future()
        self._inflight[identity] = future
        try:
            view = await self._fetch_view(identity)
            future.set_result(view)
            return view
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, get it through the shield
            raise
        finally:
            del self._inflight[identity]

    async def _fetch_view(self, identity: Identity) -> View:
        for _ in range(3):
            revision, policies, masks, filters, owned = await self._client.entitlements(identity)
            switching = self._switching
            if revision != self.revision and switching and switching[0] == revision:
                await asyncio.shield(switching[1])  # the watch is about to move there
            if revision != self.revision:
                self.reset(revision)  # the PDP moved on before the watch told us
            held = await self._registry_at(revision)
            if held is None:
                continue
            registry, mapping = held
            try:  # the registry at the same revision says what each applying policy grants
                grants = policies if isinstance(policies, Mapping) else registry.grants(policies)
            except IndexError:
                raise PdpUnavailable(
                    "the entitlements name a policy the registry does not list"
                ) from None
            settings = self._cluster().effective(mapping)
            view = View(settings, registry, grants, masks, filters, owned)
            if self.revision == revision:
                self._views[self._one(identity)] = view
            return view
        raise PdpUnavailable("the policy revision kept changing while fetching entitlements")

    async def _registry_at(self, revision: str) -> tuple[Registry, AccessGrantMapping] | None:
        """The registry at `revision`, fetched once however many users wait for it, or None
        when the PDP or the watch moved on meanwhile. Every view of a revision must share the
        one registry object: decisions are cached only for views built on the current one."""
        if self._registry is None:
            fetch = self._registry_fetch
            if fetch is None:
                fetch = self._registry_fetch = asyncio.ensure_future(self._client.registry())
                fetch.add_done_callback(self._registry_fetched)
            fetched, registry, mapping = await asyncio.shield(fetch)
            if fetched != revision or self.revision != revision:
                return None
            if self._registry is None:  # the first waiter to wake installs it
                self._hold((registry, mapping))
        return self._registry

    def _registry_fetched(self, fetch: asyncio.Future[Any]) -> None:
        if self._registry_fetch is fetch:
            self._registry_fetch = None

    async def watch(self) -> None:
        """Follow the PDP's revisions (reconnecting with backoff) while a second task enforces
        the staleness bound."""
        enforcer = asyncio.create_task(self._enforce_staleness())
        backoff, announced = WATCH_RETRY_FIRST, False
        try:
            while True:
                try:
                    async for revision, delta in self._client.revisions(self.revision):
                        if self.lost_since is not None:
                            log.info("revision watch established at %s", revision)
                        self.heard = time.monotonic()
                        self.lost_since, self.away = None, False
                        backoff, announced = WATCH_RETRY_FIRST, False
                        if revision != self.revision:
                            try:
                                await self._follow(revision, delta)
                            except Exception:  # a fault of ours: nothing half-switched is served
                                log.exception("policy revision %s: caches dropped", revision)
                                self.reset(revision)
                except PdpUnavailable as exc:
                    if not announced:
                        log.warning("revision watch lost: %s", exc)
                        announced = True
                    if self.lost_since is None:
                        # staleness counts from the last word heard, not from when silence
                        # was noticed
                        self.lost_since = self.heard
                    self.away = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, WATCH_RETRY_LONGEST)
        finally:
            enforcer.cancel()

    async def _follow(self, revision: str, delta: RevisionDelta | None) -> None:
        """Move to `revision`. When the delta moves the revision held, the new views of the
        users it names that this worker holds are fetched first (`_prefetch`: at most
        `prefetch_seconds`, checks meanwhile answered at the revision held, as they were
        before the event came), then the worker switches at once (`_switch`): their next
        checks find their views at hand. What is not fetched by the bound is dropped, as
        without the prefetch."""
        before, started = self.sizes(), time.perf_counter()
        moving = self._moving(revision, delta)
        if moving is None:
            log.info("policy revision %s: caches dropped", revision)
            return
        delta, generation, held = moving, self._generation, self._registry
        prefetched: dict[Identity, View] = {}
        fetching: asyncio.Task[None] | None = None
        switched = asyncio.get_running_loop().create_future()
        self._switching = (revision, switched)  # a fetch answered at `revision` waits for it
        try:
            try:  # 10-20 ms for 100,000 tables: in a thread, the loop answering checks meanwhile
                registry = await asyncio.to_thread(made_frozen, self._moved_registry, held, delta)
            except ValueError as exc:
                self._unfit(revision, exc)
                return
            touched = Touched(delta)
            names = [i for i in self._views if touched.identity(i.user, i.groups)]
            deadline = time.monotonic() + self._prefetch_seconds
            if names and registry is not None and self._prefetch_seconds > 0:
                fetching = asyncio.create_task(
                    self._prefetch(revision, registry, names[:PREFETCH_USERS], prefetched)
                )
            preparing = self._preparing(delta, registry)
            while True:  # a slice at a time (one chunk at least), checks answered before each
                await asyncio.sleep(0)
                until = time.perf_counter() + PREPARE_SLICE_SECONDS
                try:
                    next(preparing)
                    while time.perf_counter() < until:
                        next(preparing)
                except StopIteration as done:
                    prepared = done.value
                    break
            if fetching is not None:  # until the bound, or the preparation's end if later
                await asyncio.wait({fetching}, timeout=max(0.0, deadline - time.monotonic()))
            switching = time.perf_counter()
            if self._generation == generation and self._registry is held:
                self._switch(revision, delta, registry, prepared, prefetched)
            else:  # dropped (staleness, cluster files) or a registry fetched meanwhile: moved
                self.advance(revision, delta)  # from what is held now
            switch = time.perf_counter() - switching
        finally:
            if fetching is not None:
                fetching.cancel()
            self._noted, self._switching = None, None
            switched.set_result(None)
        sizes = self.sizes()
        log.info(
            "policy revision %s: kept %d of %d users' views (%d of %d named by the delta "
            "fetched before the switch) and %d of %d decisions%s (%.1f ms, the switch %.1f)",
            revision,
            sizes["users"],
            before["users"],
            len(prefetched),
            len(names),
            sizes["decisions"],
            before["decisions"],
            f", {len(delta.tables)} tables changed" if delta.tables else "",
            (time.perf_counter() - started) * 1000,
            switch * 1000,
        )

    async def _prefetch(
        self,
        revision: str,
        registry: tuple[Registry, AccessGrantMapping],
        identities: Sequence[Identity],
        views: dict[Identity, View],
    ) -> None:
        """Put in `views` the views at `revision` of `identities` as they arrive, built on
        `registry` (the one the switch installs), their entitlements asked
        PREFETCH_CONCURRENCY at a time; `_follow` stops it at its bound. Left out: those
        refused or answered at another revision (the PDP moved on); their users fetch them on
        their next check."""
        table, mapping = registry
        settings = self._cluster().effective(mapping)
        gate = asyncio.Semaphore(PREFETCH_CONCURRENCY)

        async def one(identity: Identity) -> None:
            async with gate:
                fetched, policies, masks, filters, owned = await self._client.entitlements(identity)
            if fetched == revision:
                grants = policies if isinstance(policies, Mapping) else table.grants(policies)
                views[identity] = View(settings, table, grants, masks, filters, owned)

        # a failure (PDP unavailable, a position not listed) leaves that view out
        await asyncio.gather(*(one(identity) for identity in identities), return_exceptions=True)

    async def _enforce_staleness(self) -> None:
        while True:
            await asyncio.sleep(STALENESS_CHECK_SECONDS)
            self.drop_if_stale()

    def drop_if_stale(self) -> None:
        """Past `max_stale` seconds without the PDP, drop what is cached so that nothing
        outdated is served (uncached checks are then denied)."""
        lost = self.lost_since
        if lost is None or self._max_stale is None or self.revision is None:
            return
        if time.monotonic() - lost > self._max_stale:
            log.error(
                "PDP unreachable for over %ss: cached answers dropped, failing closed",
                self._max_stale,
            )
            self.reset(None)

    # --- sidecar.yaml reload (sidecar/reload.py) and the saved state (sidecar/state.py) -----

    def configure(self, user_cache: int, decision_cache: int, max_stale: float | None) -> None:
        """New cache bounds and staleness bound, keeping what is cached as far as it fits."""
        self._views.users = user_cache
        while len(self._views) > user_cache:
            self._views.popitem()
        self._decision_limit = self._batch_answers.limit = decision_cache
        while len(self._decisions) + len(self._allowed) > decision_cache:
            self._make_room()
        self._batch_answers.trim(decision_cache)
        self._max_stale = max_stale

    def known(self) -> tuple[str | None, tuple[Registry, AccessGrantMapping] | None, dict]:
        """The revision, the registry and each user's view confirmed at it (for saving): one
        kept by a switch may still be held on the registry before (its policies are read by
        name, as `Views` would rebuild it), which saving does not rebuild here."""
        return self.revision, self._registry, self._views.held()

    def restore(
        self,
        revision: str,
        registry: tuple[Registry, AccessGrantMapping] | None,
        views: Mapping[Identity, Callable[[Settings, Registry], View]],
        heard: float,
    ) -> None:
        """Start from a saved state: as if the PDP had last been heard at `heard` (monotonic
        clock), so the staleness bound counts from when that state was confirmed. `views`:
        each user's view, to be built on the registry under the cluster's settings."""
        self.reset(revision)
        self._hold(registry)
        if registry is not None:
            settings = self._cluster().effective(registry[1])
            for identity, build in list(views.items())[: self._views.users]:
                self._views[self._one(identity)] = build(settings, registry[0])
        self.heard = self.lost_since = heard

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 1.0:  # at most one line a second under a flood of denials
            self._last_warning = now
            log.warning(message)
