"""One module per platform (`Technology`): its connection settings, how a secret is given, and
how to open its official client. The crawlers (pdp.crawl) and the grant targets (pdp.grants)
both build on them.

Each module has a frozen `Settings` (secrets as `Secret`, revealed only by `connect`),
`from_connection(endpoint, credentials, env)` reading the store's shape of a connection (two
`Fields` the caller made, adding its own keys), `from_target(values)` for a pdp.yaml grants
target (not Trino), and `connect(settings, *, application, ...)`, which imports the driver (each
is heavy; a service may use one platform only) and opens the client."""
