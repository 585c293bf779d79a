"""Who calls the admin API: a bearer token checked by the PDP's JWT validator, or (tests and
loopback only, with `auth: none` and `admin.trustUserHeader: true`) the `X-Pdp-User` header.

The user is the value of the token's `claim` (pdp.yaml `admin.userClaim`, default `sub`: the
one claim every provider keeps stable and unique, unlike `preferred_username`, which users or
administrators may change), named as a user of the directory (users.yaml); their groups and
global permissions come from the directory of the current snapshot."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import Request

from pdp.admin.deps import USER_HEADER, Authenticate
from pdp.auth.errors import Unauthenticated
from pdp.auth.validator import Validator
from pdp.control import Caller
from pdp.policy import DirectoryUser

Directory = Callable[[], Mapping[str, DirectoryUser]]


def caller_of(name: str, directory: Mapping[str, DirectoryUser]) -> Caller:
    user = directory.get(name)
    if user is None:
        return Caller(name)
    return Caller(name, user.groups, user.permissions)


def bearer(validator: Validator, directory: Directory, claim: str = "sub") -> Authenticate:
    async def authenticate(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        principal = await validator.validate_async(token.strip())
        name = principal.claims.get(claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(
                f"the token has no {claim!r} claim (admin.userClaim) naming the user"
            )
        return caller_of(name, directory())

    return authenticate


def trusted_header(directory: Directory) -> Authenticate:
    async def authenticate(request: Request) -> Caller:
        name = request.headers.get(USER_HEADER, "").strip()
        if not name:
            raise Unauthenticated(f"name the user in the {USER_HEADER} header")
        return caller_of(name, directory())

    return authenticate
