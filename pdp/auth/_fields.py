"""Reads one YAML mapping into typed values, naming the exact key in every error."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pdp.auth.errors import ConfigError
from pdp.auth.secret import Secret


class Fields:
    def __init__(
        self, value: object, where: str, known: Collection[str], base: Path | None = None
    ) -> None:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        unknown = sorted(str(key) for key in value if key not in known)
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}: unknown key (expected one of: {', '.join(sorted(known))})"
            )
        self._values: Mapping[Any, object] = value
        self.where = where
        self._base = base

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}.{key}: {message}")

    def has(self, key: str) -> bool:
        return self._values.get(key) is not None

    def text(self, key: str) -> str:
        value = self.optional_text(key)
        if value is None:
            raise self.error(key, "required")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self._values.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "expected a non-empty string")
        return value.strip()

    def words(self, key: str) -> tuple[str, ...]:
        """A space-separated string or a list of strings, as scopes are written."""
        value = self._values.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        raise self.error(key, "expected a string or a list of strings")

    def choice(self, key: str, options: Collection[str], default: str) -> str:
        value = self.optional_text(key) or default
        if value not in options:
            raise self.error(key, f"{value!r} is not one of: {', '.join(options)}")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self._values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(key, "expected a number")
        if not low <= value <= high:
            raise self.error(key, f"must be between {low:g} and {high:g}")
        return float(value)

    def file_bytes(self, key: str) -> bytes:
        path = Path(self.text(key))
        if self._base is not None:
            path = self._base / path  # an absolute path stays as it is
        try:
            return path.read_bytes()
        except OSError as exc:
            raise self.error(key, f"cannot read {path}: {exc.strerror}") from None

    def env_secret(self, key: str, env: Mapping[str, str]) -> Secret:
        name = self.text(key)
        if not env.get(name):
            raise self.error(key, f"environment variable {name} is not set or empty")
        return Secret(env[name])

    def secret(self, env_key: str, file_key: str, env: Mapping[str, str]) -> Secret | None:
        """A secret from an environment variable or a file, never from the YAML itself."""
        if self.has(env_key) and self.has(file_key):
            raise self.error(env_key, f"give either {env_key} or {file_key}, not both")
        if self.has(env_key):
            return self.env_secret(env_key, env)
        if self.has(file_key):
            try:
                text = self.file_bytes(file_key).decode("utf-8").strip()
            except UnicodeDecodeError:
                raise self.error(file_key, "the file is not UTF-8 text") from None
            if not text:
                raise self.error(file_key, "the file is empty")
            return Secret(text)
        return None
