"""Typed reads from one YAML mapping, the only field reader of the project.

Every problem is recorded with file, line and key path, and reading goes on, so one run reports
all of them; `fail` is for a check that cannot go on (it raises everything recorded so far).
Secrets are read from `<key>Env` (an environment variable) or `<key>File` (a file), never from
the YAML itself (docs/auth.md)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pdp.config.errors import Collector, ConfigError
from pdp.config.secret import Secret
from pdp.config.yamlsource import line_of

E = TypeVar("E", bound=StrEnum)
log = logging.getLogger(__name__)

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Fields:
    def __init__(
        self,
        data: Any,
        where: str,
        found: Collector,
        known: Iterable[str],
        base: Path | None = None,
    ) -> None:
        """`where` is the key path of `data` ("" at the top of a file); relative file paths
        resolve against `base` (the directory of the configuration file)."""
        self.where, self.found, self.base = where, found, base
        if not isinstance(data, Mapping):
            found.error(
                line_of(data), f"{where or found.file}: expected a mapping, got {_kind(data)}"
            )
            data = {}
        self.data: Mapping[Any, Any] = data
        known = tuple(known)
        for key in data:
            if key not in known:
                found.error(
                    line_of(data, key),
                    f"{self.path(key)}: unknown key {key!r} (expected one of {', '.join(known)})",
                )

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def line(self, key: str | None = None) -> int | None:
        return line_of(self.data, key)

    def error(self, key: str, message: str) -> None:
        """Record a problem with `key` and go on reading."""
        self.found.error(self.line(key), f"{self.path(key)}: {message}")

    def fail(self, key: str, message: str) -> ConfigError:
        """Record a problem with `key`, for a check that cannot go on: raise what this returns."""
        self.error(key, message)
        return ConfigError(self.found.errors)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, required: bool = False, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(key, f"required (missing required key {key!r})")
            return default
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.error(key, "expected a non-empty string")
            return default
        text = str(value).strip()
        if not text:
            self.error(key, "expected a non-empty string")
            return default
        return text

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.error(key, "expected true or false")
            return default
        return value

    def number(
        self,
        key: str,
        default: float,
        *,
        low: float | None = None,
        high: float | None = None,
        positive: bool = False,
        whole: bool = False,
    ) -> float:
        """A number, at least `low` and at most `high`, above 0 if `positive`, an integer if
        `whole`; `default` (after an error too) when it is absent."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.error(key, f"expected a number, got {value!r}")
        elif positive and value <= 0:
            self.error(key, f"expected a positive number, got {value!r}")
        elif (low is not None and value < low) or (high is not None and value > high):
            self.error(key, f"must be between {low:g} and {high:g}")
        elif whole and value != int(value):
            self.error(key, f"expected a whole number, got {value!r}")
        else:
            return float(value)
        return default

    def enum(self, key: str, kind: type[E], default: E) -> E:
        raw = self.data.get(key)
        if raw is None:
            return default
        for member in kind:
            if str(raw).casefold() == member.value.casefold():
                return member
        choices = ", ".join(m.value for m in kind)
        self.error(key, f"unknown value {raw!r} (expected one of {choices})")
        return default

    def choice(self, key: str, options: Collection[str], default: str) -> str:
        value = self.text(key) or default
        if value not in options:
            self.error(key, f"{value!r} is not one of: {', '.join(options)}")
            return default
        return value

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.error(key, "expected a list of strings")
            return []
        result = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item:
                result.append(item)
            else:
                self.found.error(
                    line_of(value, index),
                    f"{self.path(key)}[{index}]: expected a non-empty string, got {item!r}",
                )
        return result

    def words(self, key: str) -> tuple[str, ...]:
        """A space-separated string or a list of strings, as scopes are written."""
        value = self.data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(v.strip() for v in value)
        self.error(key, "expected a string or a list of strings")
        return ()

    def list(self, key: str) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.error(key, "expected a list")
            return []
        return value

    def attributes(self, key: str) -> dict[str, frozenset[str]]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.error(key, "expected a mapping of attribute name to a list of values")
            return {}
        result = {}
        for name, values in value.items():
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                self.found.error(
                    line_of(value, name),
                    f"{self.path(key)}.{name}: expected a string or a list of strings",
                )
                continue
            result[str(name)] = frozenset(values)
        return result

    def file_path(self, key: str, required: bool = False) -> Path | None:
        """A path relative to the configuration file (an absolute one stays as it is)."""
        name = self.text(key, required=required)
        if not name:
            return None
        return self.base / name if self.base is not None else Path(name)

    def existing_file(self, key: str) -> Path | None:
        """`file_path`, and an error naming this line when no such file exists."""
        path = self.file_path(key)
        if path is not None and not path.is_file():
            kind = "not a file" if path.exists() else "no such file"
            self.error(key, f"{self.text(key)!r}: {kind} ({path})")
        return path

    def file_bytes(self, key: str) -> bytes | None:
        path = self.file_path(key, required=True)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            self.error(key, f"cannot read {path}: {exc.strerror}")
            return None

    def secret(self, key: str, env: Mapping[str, str], inline: bool = False) -> Secret | None:
        """The secret named by `<key>Env` or `<key>File`; None when neither is given.

        `inline`: `<key>` may hold the value itself, taken as it is (connection credentials
        the store decrypted; never a configuration file). Otherwise a `${VAR}` reference
        written in `<key>`, the older syntax of grant targets, is still read, with a
        deprecation warning, until the next release."""
        env_key, file_key = f"{key}Env", f"{key}File"
        given = [k for k in ((key,) if inline else ()) + (env_key, file_key) if self.has(k)]
        if len(given) > 1:
            self.error(given[0], f"give either {' or '.join(given)}, not both")
            return None
        if inline and given == [key]:
            value = self.data[key]
            if not isinstance(value, str) or not value:
                self.error(key, "expected a non-empty string")
                return None
            return Secret(value)
        if self.has(env_key):
            return self._from_env(env_key, self.text(env_key), env)
        if self.has(file_key):
            return self._from_file(file_key)
        raw = self.data.get(key)
        if raw is None:
            return None
        if isinstance(raw, str) and (match := _REFERENCE.fullmatch(raw.strip())):
            self._deprecated(key, f"write {env_key}: {match.group(1)}")
            return self._from_env(key, match.group(1), env)
        self.error(
            key,
            f"never inline: give {env_key} or {file_key} (the deprecated way, to write secrets "
            "as ${ENV_VAR}, still works until the next release)",
        )
        return None

    def resolve(self, key: str, env: Mapping[str, str]) -> Any:
        """A plain value, with `${VAR}` references replaced (deprecated: write the value)."""
        value = self.data.get(key)
        if not isinstance(value, str) or not _REFERENCE.search(value):
            return value

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if not env.get(name):
                self.error(key, f"environment variable {name} is not set or empty")
                return ""
            return env[name]

        self._deprecated(key, "write the value itself")
        return _REFERENCE.sub(lookup, value)

    def _from_env(self, key: str, name: str, env: Mapping[str, str]) -> Secret | None:
        if not name:
            return None
        if not env.get(name):
            self.error(key, f"environment variable {name} is not set or empty")
            return None
        return Secret(env[name])

    def _from_file(self, key: str) -> Secret | None:
        content = self.file_bytes(key)
        if content is None:
            return None
        try:
            text = content.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.error(key, "the file is not UTF-8 text")
            return None
        if not text:
            self.error(key, "the file is empty")
            return None
        return Secret(text)

    def _deprecated(self, key: str, instead: str) -> None:
        message = f"{self.path(key)}: ${{ENV_VAR}} references are deprecated; {instead}"
        self.found.warn(self.line(key), message)
        log.warning("%s:%s: %s", self.found.file, self.line(key) or "", message)


def _kind(value: object) -> str:
    return type(value).__name__
