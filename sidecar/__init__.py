"""The Trino sidecar: speaks the HTTP contract of Trino's OPA access-control plugin and answers
from memory, asking the PDP only on a cache miss."""
