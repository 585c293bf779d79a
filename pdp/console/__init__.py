"""The governor's console in a browser, served on the admin listener and built on the admin
API alone (docs/console.md)."""

from pdp.console.app import mount_console
from pdp.console.oidc import OidcClient, OidcSignIn
from pdp.console.signin import DevSignIn, DevTokens


def sign_in_method(
    client: OidcClient | None, user_tokens: str | None, user_client: str, trusted_header: bool
) -> DevSignIn | OidcSignIn | None:
    """The development picker when pdp.yaml runs the development issuer with user tokens (its
    token URL in `user_tokens`) or trusts the user header (loopback tests); else the IdP's
    sign-in when `console.signIn` names a client; else none (the console says so)."""
    if user_tokens is not None:
        return DevSignIn(DevTokens(user_tokens, user_client))
    if trusted_header:
        return DevSignIn(None)
    return OidcSignIn(client) if client is not None else None


__all__ = [
    "DevSignIn",
    "DevTokens",
    "OidcClient",
    "OidcSignIn",
    "mount_console",
    "sign_in_method",
]
