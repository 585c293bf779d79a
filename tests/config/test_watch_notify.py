"""Policy files are reloaded when the kernel reports a change, not at the next poll: every
`Watched.run` here polls once a minute, so an edit applied within seconds came by notification.
The semantics stay those of the poll: a bad edit keeps the last good value, with file:line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from devstack.configs import make_tree
from pdp.config import watch as watch_module
from pdp.config.load import Loaded, load_snapshot
from pdp.config.watch import Watched
from pdp.policy import PolicySnapshot

SLOW_POLL = 60.0  # seconds: longer than any bound below
BOUND = 10.0  # seconds: generous, never a timing assertion

GRANT_ALL = (
    "policies:\n  - name: everyone\n    access: READ\n    who: {groups: [analysts]}\n"
    "    what: {dataSources: [trino-prod.hive.sales.orders]}\n"
)


def names(snapshot: PolicySnapshot) -> list[str]:
    return sorted(p.name for p in snapshot.policies)


@contextlib.asynccontextmanager
async def running(watched: Watched[PolicySnapshot], interval: float) -> AsyncIterator[None]:
    task = asyncio.create_task(watched.run(interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(applied: Callable[[], bool], nudge: Callable[[], object]) -> None:
    """Wait (bounded) until `applied`; `nudge` repeats the change in case the watcher was not
    yet set up when it was first made (a watcher only reports what happens once it runs)."""
    deadline = time.monotonic() + BOUND
    while not applied():
        assert time.monotonic() < deadline, f"not applied within {BOUND}s"
        await asyncio.sleep(0.2)
        if not applied():
            nudge()


def touch(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def watched_tree(tmp_path: Path) -> tuple[Watched[PolicySnapshot], list[PolicySnapshot], Path]:
    tree = make_tree(tmp_path)
    seen: list[PolicySnapshot] = []
    watched = Watched(
        "policy",
        tree.policy_files,
        lambda: load_snapshot(tree.policy_files, None),
        on_change=seen.append,
    )
    return watched, seen, tree.policy_files[1]


def has_policy(watched: Watched[PolicySnapshot], name: str) -> Callable[[], bool]:
    return lambda: name in names(watched.current)


async def test_an_edit_in_place_is_applied_without_waiting_for_the_poll(tmp_path):
    watched, seen, policies = watched_tree(tmp_path)
    async with running(watched, SLOW_POLL):
        policies.write_text(GRANT_ALL)
        await until(has_policy(watched, "everyone"), lambda: touch(policies))
    assert seen[-1] is watched.current


async def test_a_file_replaced_by_rename_is_applied(tmp_path):
    """What editors and `kubectl cp`-style tools do: write beside, then rename into place."""
    watched, _, policies = watched_tree(tmp_path)

    def replace() -> None:
        new = policies.with_name(".policies.yaml.new")
        new.write_text(GRANT_ALL)
        new.replace(policies)

    async with running(watched, SLOW_POLL):
        replace()
        await until(has_policy(watched, "everyone"), replace)


async def test_a_configmap_style_symlink_swap_is_applied(tmp_path):
    """Kubernetes mounts a ConfigMap as `file -> ..data/file`, `..data -> ..<version>`, and
    swaps versions by renaming a new `..data` link over the old one."""
    (tmp_path / "source").mkdir()
    tree = make_tree(tmp_path / "source")
    mount = tmp_path / "mount"
    (mount / "..v1").mkdir(parents=True)
    for path in tree.policy_files:
        (mount / "..v1" / path.name).write_bytes(path.read_bytes())
    (mount / "..data").symlink_to("..v1")
    files = [mount / p.name for p in tree.policy_files]
    for file in files:
        file.symlink_to(Path("..data") / file.name)
    watched = Watched("policy", files, lambda: load_snapshot(files, None))
    version = 1

    def swap() -> None:
        nonlocal version
        version += 1
        new = mount / f"..v{version}"
        new.mkdir()
        for file in files:
            (new / file.name).write_bytes((mount / "..data" / file.name).read_bytes())
        (new / "policies.yaml").write_text(GRANT_ALL)
        (mount / "..data_tmp").symlink_to(new.name)
        (mount / "..data_tmp").replace(mount / "..data")

    async with running(watched, SLOW_POLL):
        swap()
        await until(has_policy(watched, "everyone"), swap)


async def test_a_burst_of_writes_is_coalesced_and_the_last_one_wins(tmp_path):
    watched, seen, policies = watched_tree(tmp_path)
    last = GRANT_ALL.replace("everyone", "everyone-49", 1)
    async with running(watched, SLOW_POLL):
        for n in range(50):
            policies.write_text(GRANT_ALL.replace("everyone", f"everyone-{n}", 1))
        await until(has_policy(watched, "everyone-49"), lambda: policies.write_text(last))
    assert len(seen) < 50  # a burst is not one reload per write


async def test_a_bad_edit_keeps_the_last_good_policy_with_file_and_line(tmp_path, caplog):
    watched, seen, policies = watched_tree(tmp_path)
    good = watched.current
    async with running(watched, SLOW_POLL):
        policies.write_text("policies:\n  - name: broken\n    access: MAYBE\n")
        await until(lambda: watched.last_error is not None, lambda: touch(policies))
        assert watched.current is good and seen == []
        assert [(p.file.endswith("policies.yaml"), p.line) for p in watched.rejected] == [(True, 3)]

        policies.write_text(GRANT_ALL)  # the fix is applied as promptly
        await until(has_policy(watched, "everyone"), lambda: touch(policies))
        assert watched.last_error is None


async def test_retargeted_files_in_another_directory_are_followed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    watched, _, _ = watched_tree(tmp_path / "a")
    other = make_tree(tmp_path / "b")
    async with running(watched, SLOW_POLL):
        await asyncio.sleep(0)  # the watcher follows the first directory
        watched.retarget(other.policy_files, lambda: load_snapshot(other.policy_files, None))
        other.write("policies.yaml", GRANT_ALL)
        await until(has_policy(watched, "everyone"), lambda: touch(other.policy_files[1]))


# --- the fallback: polling, as before ------------------------------------------------------


async def test_without_watchfiles_the_files_are_polled(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(watch_module, "watchfiles", None)
    watched, _, policies = watched_tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="pdp.config.watch"):
        async with running(watched, 0.05):
            policies.write_text(GRANT_ALL)
            await until(has_policy(watched, "everyone"), lambda: touch(policies))
    assert "watchfiles is not installed: files are polled" in caplog.text


async def test_a_failing_watcher_is_reported_once_and_polling_takes_over(
    tmp_path, monkeypatch, caplog
):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watch_module.watchfiles, "watch", broken)
    watched, _, policies = watched_tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="pdp.config.watch"):
        async with running(watched, 0.05):
            await until(lambda: "notification failed" in caplog.text, lambda: None)
            policies.write_text(GRANT_ALL)
            await until(has_policy(watched, "everyone"), lambda: touch(policies))
            await asyncio.sleep(0.2)  # several polls later
    assert caplog.text.count("notification failed") == 1
    assert "inotify watch limit reached" in caplog.text


async def test_the_poll_still_catches_what_no_notification_reports(tmp_path, monkeypatch):
    """The safety net: a change the kernel does not report (a network file system) is still
    found by comparing signatures every `reloadIntervalSeconds`. Here the notifier watches a
    directory where nothing happens."""
    watched, _, policies = watched_tree(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(watch_module, "_directories", lambda _paths: (elsewhere,))
    async with running(watched, 0.05):
        policies.write_text(GRANT_ALL)
        await until(has_policy(watched, "everyone"), lambda: touch(policies))


async def test_the_files_are_compared_and_compiled_off_the_loop(tmp_path):
    """The poll's stat of every file and the compile run in the process's reload thread: the
    event loop keeps serving meanwhile (a registry split by schema is a thousand files)."""
    tree = make_tree(tmp_path)
    where: list[tuple[str, str]] = []

    def load() -> Loaded[PolicySnapshot]:
        where.append(("load", threading.current_thread().name))
        return load_snapshot(tree.policy_files, None)

    watched = Watched("policy", tree.policy_files, load)
    where.clear()  # the first load, at start, is the caller's
    moved = watched._moved

    def compared() -> bool:
        where.append(("compare", threading.current_thread().name))
        return moved()

    watched._moved = compared  # type: ignore[method-assign]
    async with running(watched, 0.05):
        tree.policy_files[1].write_text(GRANT_ALL)
        await until(has_policy(watched, "everyone"), lambda: touch(tree.policy_files[1]))
    assert {step for step, _ in where} == {"load", "compare"}
    assert all(thread.startswith("config-reload") for _, thread in where), where


async def test_a_stop_that_comes_as_a_change_is_reported_ends_the_watch(tmp_path):
    """Cancelled in the very step its wait ends (a change reported, an event set), the watch
    still ends: a stop never waits for good (Python 3.11's `asyncio.wait_for` returned the
    wait's result there and the loop ran on; a sidecar's teardown hung on it)."""
    watched, _, _ = watched_tree(tmp_path)
    for steps in range(8):  # the cancellation lands a step later each time: one is the race
        task = asyncio.create_task(watched.run(SLOW_POLL))
        while watched._notifier is None:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)  # waiting for a change
        watched._notifier.changed.set()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=BOUND)
        assert task in done, f"cancelled {steps} steps after the change, the watch ran on"
        assert task.cancelled()
