"""Local stand-ins for the platforms the product governs, started and stopped by the project's own
tests, benchmarks and demo: a throwaway PostgreSQL cluster and a real single-node Trino. Not part
of the product; nothing in `pdp` or `sidecar` imports it."""
