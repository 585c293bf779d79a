"""Configuration problems: each names its file, line and key path; the project's one
ConfigError carries every problem found at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


class ConfigError(ValueError):
    """One or more problems that make a configuration unusable. Nothing of it is applied.

    A plain message stands for a value built in code rather than read from a file."""

    def __init__(self, problems: list[Problem] | str) -> None:
        self.problems = [Problem("", None, problems)] if isinstance(problems, str) else problems
        super().__init__("\n".join(map(str, self.problems)))


class Collector:
    """Gathers errors and warnings while a file is read, so one run reports all of them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(Problem(self.file, line, message))

    def warn(self, line: int | None, message: str) -> None:
        self.warnings.append(Problem(self.file, line, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)
