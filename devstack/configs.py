"""Writing configuration trees for tests and benchmarks: YAML text in, file paths out."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from pdp.config.load import load_settings, load_snapshot
from pdp.core.model import Settings
from pdp.policy.snapshot import PolicySnapshot

# The setting of decisions.md section 5: one registered table, two policies.
WORKED_REGISTRY = """
connections:
  - name: trino-prod
    technology: trino
    status: active
    databases:
      - name: hive
        schemas:
          - name: sales
            tables:
              - orders
              - {name: scratch, status: inactive}
"""
WORKED_POLICIES = """
policies:
  - name: orders-readers
    access: READ
    who: {groups: [analysts]}
    what: {dataSources: [trino-prod.hive.sales.orders]}
  - name: orders-writers
    access: WRITE
    who: {users: [bob]}
    what: {dataSources: [trino-prod.hive.sales.orders]}
"""
WORKED_USERS = """
users:
  alice: {groups: [analysts]}
  bob: {}
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@dataclass
class ConfigTree:
    root: Path
    policy_files: list[Path]
    mapping: Path | None
    properties: Path | None
    cluster_mapping: Path | None

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(dedent(text), encoding="utf-8")
        return path

    def snapshot(self) -> PolicySnapshot:
        return load_snapshot(self.policy_files, self.mapping).value

    def settings(self) -> Settings:
        return load_settings(self.properties, self.cluster_mapping, self.snapshot().mapping).value

    def pdp_yaml(self, port: int, auth: str = "none") -> Path:
        lines = [f"listen: 127.0.0.1:{port}", "policyFiles:"]
        lines += [f"  - {p.name}" for p in self.policy_files]
        if self.mapping:
            lines.append(f"accessGrantMapping: {self.mapping.name}")
        lines.append("reloadIntervalSeconds: 0.1")
        lines.append(f"auth: {auth}")
        return self.write("pdp.yaml", "\n".join(lines) + "\n")

    def sidecar_yaml(
        self, port: int, pdp_port: int, max_stale: float | None = 300, auth: str = "none"
    ) -> Path:
        lines = [
            f"listen: 127.0.0.1:{port}",
            "workers: 1",
            f"pdp: {{target: '127.0.0.1:{pdp_port}', timeoutSeconds: 2, auth: {auth}}}",
            "reloadIntervalSeconds: 0.1",
            "cluster:",
        ]
        if self.properties:
            lines.append(f"  properties: {self.properties.name}")
        if self.cluster_mapping:
            lines.append(f"  accessGrantMapping: {self.cluster_mapping.name}")
        lines.append(f"cache: {{maxStaleSeconds: {'null' if max_stale is None else max_stale}}}")
        return self.write("sidecar.yaml", "\n".join(lines) + "\n")


def make_tree(
    root: Path,
    registry: str = WORKED_REGISTRY,
    policies: str = WORKED_POLICIES,
    users: str = WORKED_USERS,
    mapping: str | None = None,
    properties: str | None = None,
    cluster_mapping: str | None = None,
) -> ConfigTree:
    tree = ConfigTree(root, [], None, None, None)
    tree.policy_files = [
        tree.write("registry.yaml", registry),
        tree.write("policies.yaml", policies),
        tree.write("users.yaml", users),
    ]
    if mapping is not None:
        tree.mapping = tree.write("access-grant-mapping.yaml", mapping)
    if properties is not None:
        tree.properties = tree.write("cluster.properties", properties)
    if cluster_mapping is not None:
        tree.cluster_mapping = tree.write("cluster-mapping.yaml", cluster_mapping)
    return tree
