"""Messages and stubs generated from proto/pdpapi/v1/pdp.proto when first imported."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
if str(PROTO_ROOT) not in sys.path:
    sys.path.append(str(PROTO_ROOT))

pb, rpc = grpc.protos_and_services("pdpapi/v1/pdp.proto")

# The contract of the WatchRevision stream beyond its messages: the PDP repeats the current
# revision at least this often, and a watcher that hears nothing for SILENCE_SECONDS treats the
# PDP as gone (frozen process, dropped packets) even though the connection looks open.
HEARTBEAT_SECONDS = 1.0
SILENCE_SECONDS = 3 * HEARTBEAT_SECONDS

# Transport-level liveness on both ends: HTTP/2 pings on idle connections, so that a dead peer
# is noticed by the channel too, and the server accepts the client's pings at that rate.
KEEPALIVE_CLIENT = [
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 2_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
KEEPALIVE_SERVER = [
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 2_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 4_000),
    ("grpc.http2.max_ping_strikes", 0),
]

# Request metadata a server accepts. gRPC's defaults (a soft limit of 8 KiB, past which calls are
# refused at random, and a hard one of 16 KiB answered RESOURCE_EXHAUSTED) are below what a
# large Entra token with its header needs; the validator then refuses tokens over 16 KiB with
# UNAUTHENTICATED, as documented, instead of the transport refusing them at random.
METADATA_LIMIT = [
    ("grpc.max_metadata_size", 1024 * 1024),
    ("grpc.absolute_max_metadata_size", 1024 * 1024),
]
