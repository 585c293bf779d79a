"""The PDP's gRPC service and the conversions between its messages and core values."""
