"""The admin API (FastAPI) over the control plane: connections, objects, settings, sync jobs
and object permissions. See docs/connections.md."""

from pdp.admin.app import AdminSettings, create_app

__all__ = ["AdminSettings", "create_app"]
