"""Benchmark (not a test): the console's tree of a schema with 10,000 tables, and a page of jobs,
rendered in headless Chromium against a real PDP (SQLite store, admin API, console).

    .venv/bin/python benchmarks/console_tree.py [--tables 10000] [--jobs 100] [--rounds 10]

Run it on an idle machine (it measures wall-clock time). It fills a store with one connection,
`hc`, whose schema `lake.big` holds `--tables` tables, and `--jobs` finished sync jobs; starts
`pdp serve` on it (`auth: none`, `admin.trustUserHeader`: loopback only); signs in through the
console; then, `--rounds` times each, measures from the click to the rows on screen:

1. expanding `big`: the first page (100) of its tables;
2. "Show more": the next page;
3. the Sync jobs page (50 rows): from navigation to its rows;

and, for comparison, the admin API's own answer for the first page of tables. Printed: median
and slowest per step, in milliseconds. Needs Debian's chromium and chromium-driver (make deps).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from devstack.processes import Process, free_port
from pdp.objects import ObjectPath
from pdp.objects.syncplan import Listing, RemoteColumn, RemoteObject
from pdp.store import JobState, JobTrigger, JobType, Store

USERS = "users:\n  gov: {permissions: [GOVERNANCE, APPLICATION_ADMIN]}\n"


def fill(url: str, tables: int, jobs: int) -> None:
    store = Store.open(url)
    columns = tuple(RemoteColumn(f"c{c}", "varchar", True, c + 1) for c in range(5))
    listings = [
        Listing((), (RemoteObject("lake"),)),
        Listing(("lake",), (RemoteObject("big"),)),
        Listing(
            ("lake", "big"),
            tuple(RemoteObject(f"t{n:06}", "BASE TABLE", columns) for n in range(tables)),
        ),
    ]
    with store.write() as tx:
        tx.register_connection("hc", "trino", endpoint={"host": "trino.invalid"})
        assert tx.sync("hc", listings).applied
        for _ in range(jobs):
            job = tx.create_job(JobType.SYNC, JobTrigger.MANUAL, ObjectPath("hc"))
            tx.update_job(job.id, state=JobState.ACTIVE)
            tx.update_job(job.id, state=JobState.COMPLETED, stats={"table.seen": tables})
    store.close()


def start(root: Path, store_url: str) -> tuple[Process, str]:
    grpc_port, admin_port = free_port(), free_port()
    for name, text in (
        ("registry.yaml", "connections: []\n"),
        ("policies.yaml", "policies: []\n"),
        ("users.yaml", USERS),
    ):
        (root / name).write_text(text)
    (root / "pdp.yaml").write_text(
        f"listen: 127.0.0.1:{grpc_port}\npolicyFiles: [registry.yaml, policies.yaml, users.yaml]\n"
        f"auth: none\nstore: {store_url}\n"
        f"admin: {{listen: '127.0.0.1:{admin_port}', trustUserHeader: true}}\n"
    )
    url = f"http://127.0.0.1:{admin_port}"
    process = Process(
        [sys.executable, "-m", "pdp.cli", "serve", "--config", str(root / "pdp.yaml")],
        root / "pdp.log",
    )

    def up() -> bool:
        try:
            return httpx.get(f"{url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    process.wait_until(up, timeout=120)
    return process, url


def browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def measure(label: str, rounds: int, once: Callable[[], float]) -> None:
    times = [once() for _ in range(rounds)]
    print(
        f"  {label:<44} median {statistics.median(times):7.1f} ms   slowest {max(times):7.1f} ms",
        flush=True,
    )


def run(url: str, rounds: int) -> None:
    driver = browser()
    wait = WebDriverWait(driver, 60, poll_frequency=0.005)  # the default polls twice a second
    try:
        driver.get(f"{url}/console/signin")
        wait.until(ready.element_to_be_clickable((By.LINK_TEXT, "gov"))).click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "user"), "gov"))

        def toggle(name: str):  # type: ignore[no-untyped-def]
            xpath = f"//button[@aria-label='Show the children of {name}']"
            return wait.until(ready.element_to_be_clickable((By.XPATH, xpath)))

        def rows() -> int:
            return len(driver.find_elements(By.XPATH, "//button[@data-path][starts-with(., 't0')]"))

        def first_page() -> float:
            driver.get(f"{url}/console/connections/hc")
            toggle("hc").click()
            toggle("lake").click()
            button = toggle("big")
            begin = time.perf_counter()
            button.click()
            wait.until(lambda _: rows() >= 100)
            return (time.perf_counter() - begin) * 1000

        def next_page() -> float:
            first_page()
            more = wait.until(
                ready.element_to_be_clickable((By.XPATH, "//button[starts-with(., 'Show more')]"))
            )
            begin = time.perf_counter()
            more.click()
            wait.until(lambda _: rows() >= 200)
            return (time.perf_counter() - begin) * 1000

        def jobs_page() -> float:
            begin = time.perf_counter()
            driver.get(f"{url}/console/jobs")
            wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, "main tbody tr")) >= 50)
            return (time.perf_counter() - begin) * 1000

        measure("tree: expand a schema, first 100 tables", rounds, first_page)
        measure("tree: Show more, next 100 tables", rounds, next_page)
        measure("Sync jobs page (50 jobs), load to rows", rounds, jobs_page)
    finally:
        driver.quit()
    api = httpx.Client(base_url=url, headers={"X-Pdp-User": "gov"})

    def api_page() -> float:
        begin = time.perf_counter()
        answer = api.post("/data/object/search/hc/lake/big", json={"size": 100})
        assert answer.status_code == 200 and len(answer.json()["hits"]) == 100
        return (time.perf_counter() - begin) * 1000

    measure("admin API alone: first 100 tables", rounds, api_page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        store_url = f"sqlite:///{root / 'store.db'}"
        print(f"a schema of {args.tables} tables, {args.jobs} jobs; SQLite store", flush=True)
        fill(store_url, args.tables, args.jobs)
        process, url = start(root, store_url)
        try:
            run(url, args.rounds)
        finally:
            process.stop()


if __name__ == "__main__":
    main()
