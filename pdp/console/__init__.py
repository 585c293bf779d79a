"""The governor's console in a browser, served on the admin listener and built on the admin
API alone (docs/console.md)."""

from pdp.console.app import mount_console
from pdp.console.signin import DevSignIn, DevTokens

__all__ = ["DevSignIn", "DevTokens", "mount_console"]
