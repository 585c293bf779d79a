"""Messages and stubs generated from proto/pdpapi/v1/pdp.proto when first imported."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
if str(PROTO_ROOT) not in sys.path:
    sys.path.append(str(PROTO_ROOT))

pb, rpc = grpc.protos_and_services("pdpapi/v1/pdp.proto")
