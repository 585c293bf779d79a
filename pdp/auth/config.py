"""The rule for `auth:` blocks: configured, or explicitly off, never off by omission.

auth: {...}     authentication as configured (ClientCredentials / ValidatorConfig)
auth: none      explicitly off: returns None, and logs a warning
(absent)        ConfigError: forgetting the block must not silently disable authentication
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from pdp.auth.credentials import ClientCredentials
from pdp.auth.validator import ValidatorConfig
from pdp.config.errors import ConfigError, Problem

logger = logging.getLogger("pdp.auth")

AUTH_OFF = "none"


def auth_block(value: object, where: str = "auth", file: str = "") -> object | None:
    """The block to parse, or None when it is explicitly `none`."""
    if value is None:
        message = (
            f"{where}: missing; configure it, or write `{where.rsplit('.', 1)[-1]}: {AUTH_OFF}` "
            "to run without authentication"
        )
        raise ConfigError([Problem(file, None, message)])
    if isinstance(value, str) and value.strip().lower() == AUTH_OFF:
        logger.warning("%s: none: authentication is OFF; use this on loopback demos only", where)
        return None
    return value


def client_auth_from_config(
    value: object,
    where: str = "auth",
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
    file: str = "",
) -> ClientCredentials | None:
    """An outbound client's credentials (the sidecar calling the PDP, for one)."""
    block = auth_block(value, where, file)
    if block is None:
        return None
    return ClientCredentials.from_mapping(block, where, env, base, file)


def server_auth_from_config(
    value: object, where: str = "auth", file: str = ""
) -> ValidatorConfig | None:
    """What a server (the PDP) accepts."""
    block = auth_block(value, where, file)
    return None if block is None else ValidatorConfig.from_mapping(block, where, file)
