"""Wire formats shared by more than one service: the Trino OPA plugin's request bodies
(`trino`, read by the sidecar and `pdp explain`) and core values <-> the PDP's protobuf
messages (`proto`, used by the PDP service and its clients)."""
