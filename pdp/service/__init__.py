"""The PDP gRPC service: decisions, entitlements, the registry and the revision watch."""
