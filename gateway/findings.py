"""Reading parsed TOML tables while collecting findings: every problem, with its key path, not the first.

``regions.toml`` (``gateway.config`` and ``gateway.legal.policy``) and the decision
case files (``gateway.legal.decision_cases``) are all read through ``TableReader``:
a getter that meets a missing or malformed value records a ``Finding``
(``instruments."eu.epoc".reaches: is required``) and returns a default, so one pass
reports everything that is wrong. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from gateway.errors import Finding
from gateway.model import is_identifier

_TYPE_WORDS = {"str": "a string", "int": "an integer", "bool": "true or false", "list": "a list", "dict": "a table"}


def quote(key: str) -> str:
    """A key as it is written in a key path: bare when it is an identifier without a dot, else in double quotes."""
    return key if is_identifier(key) and "." not in key else f'"{key}"'


def options(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def to_datetime(value: object) -> datetime | None:
    """A TOML date or date-time (or an RFC 3339 string) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            text += "T00:00:00"
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


class TableReader:
    """Typed access to one TOML table that records findings instead of raising.

    Every key read is remembered; ``finish()`` reports the rest as unknown. A reader
    given ``allowed`` keys reports any other key at once instead.
    """

    def __init__(self, table: Any, path: str, findings: list[Finding], *, allowed: tuple[str, ...] | None = None) -> None:
        self.path = path
        self.findings = findings
        self.ok = isinstance(table, dict)
        if not self.ok:
            findings.append(Finding(path, "must be a table"))
        self.table: dict[str, Any] = table if self.ok else {}
        self.seen: set[str] = set()
        if allowed is not None:
            for key in self.table:
                if key not in allowed:
                    self.bad(key, "unknown key")

    # -- paths and findings ------------------------------------------------------------

    def at(self, key: str) -> str:
        return f"{self.path}.{quote(key)}" if self.path else quote(key)

    def problem(self, path: str, message: str) -> None:
        self.findings.append(Finding(path, message))

    def bad(self, key: str, message: str) -> None:
        self.problem(self.at(key), message)

    def finish(self, *, also_known: tuple[str, ...] = ()) -> None:
        """Report every key not read (nor in ``also_known``) as unknown."""
        if not self.ok:
            return
        for key in self.table:
            if key not in self.seen and key not in also_known:
                self.bad(key, "unknown key")

    # -- tables ------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self.table

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.table.get(key)

    def sub(self, key: str, *, required: bool = False, allowed: tuple[str, ...] | None = None) -> TableReader | None:
        if not self._present(key, required=required):
            return None
        return TableReader(self.table[key], self.at(key), self.findings, allowed=allowed)

    def entries(self) -> Iterator[tuple[str, TableReader]]:
        """Each entry of this table, as a reader."""
        for name, value in self.table.items():
            self.seen.add(name)
            yield name, TableReader(value, self.at(name), self.findings)

    def items(self, key: str, *, required: bool = True) -> Iterator[tuple[str, TableReader]]:
        """Each entry of the table of tables at ``key``, as a reader."""
        parent = self.sub(key, required=required)
        if parent is not None and parent.ok:
            yield from parent.entries()

    # -- values ------------------------------------------------------------------------

    def _present(self, key: str, *, required: bool) -> bool:
        """Mark ``key`` read, and say whether it is there (a required key that is not is a finding)."""
        self.seen.add(key)
        if key in self.table:
            return True
        if required:
            self.bad(key, "is required")
        return False

    def get(self, key: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        """A value of ``kind`` (an ``int`` is never a ``bool``)."""
        if not self._present(key, required=required):
            return default
        value = self.table[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.bad(key, f"must be {_TYPE_WORDS.get(name, name)}")
            return default
        return value

    def text(self, key: str, *, required: bool = False, default: str = "") -> str:
        """A string; a required one must not be blank."""
        if not self._present(key, required=required):
            return default
        value = self.table[key]
        if not isinstance(value, str):
            self.bad(key, "must be a string")
            return default
        if required and not value.strip():
            self.bad(key, "must not be empty")
        return value

    def optional_text(self, key: str) -> str | None:
        """A string, or None when the key is absent or not a string (a finding then)."""
        if key not in self.table:
            self.seen.add(key)
            return None
        value = self.text(key)
        return value if isinstance(self.table[key], str) else None

    def choice(self, key: str, values: tuple[str, ...], *, required: bool = False, default: str | None = None) -> str | None:
        """One of ``values``."""
        if key not in self.table:
            self.seen.add(key)
            if required:
                self.bad(key, f"is required; one of {options(values)}")
            return default
        value = self.text(key)
        if value not in values:
            if isinstance(self.table[key], str):
                self.bad(key, f"unknown value `{value}`; use {options(values)}")
            return default
        return value

    def flag(self, key: str, *, default: bool = False) -> bool:
        value = self.optional_flag(key)
        return default if value is None else value

    def optional_flag(self, key: str) -> bool | None:
        """True, false, or None when the key is absent."""
        self.seen.add(key)
        value = self.table.get(key)
        if value is not None and not isinstance(value, bool):
            self.bad(key, "must be true or false")
            return None
        return value

    def number(self, key: str) -> float | None:
        self.seen.add(key)
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(key, "must be a number")
            return None
        return float(value)

    def positive_int(self, key: str, *, required: bool = False, allow_zero: bool = False) -> int | None:
        if not self._present(key, required=required):
            return None
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.bad(key, "must be a whole number")
            return None
        if value < 0 or (value == 0 and not allow_zero):
            self.bad(key, f"must be {'zero or more' if allow_zero else 'a positive number'}, not `{value}`")
            return None
        return value

    def positive_number(self, key: str) -> float | None:
        value = self.number(key)
        if value is not None and value <= 0:
            self.bad(key, f"must be a positive number, not `{self.table[key]}`")
            return None
        return value

    def moment(self, key: str) -> datetime | None:
        """A date or date-time, as an aware UTC datetime."""
        self.seen.add(key)
        if key not in self.table:
            return None
        value = self.table[key]
        parsed = to_datetime(value)
        if parsed is None:
            self.bad(key, f"`{value}` is not a date (write e.g. 2026-08-18)")
        return parsed

    def str_list(self, key: str, *, required: bool = True) -> list[str]:
        """A list of strings (each one that is not a string is a finding)."""
        values = self.get(key, list, required=required, default=[])
        out: list[str] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                self.problem(f"{self.at(key)}[{i}]", "must be a string")
            else:
                out.append(value)
        return out

    def strings(self, key: str, *, required: bool = False) -> list[tuple[str, str]]:
        """A list of strings as (path, value) pairs; a lone string counts as a one-item list."""
        if not self._present(key, required=required):
            return []
        values = self.table[key]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list):
            self.bad(key, "must be a list of strings")
            return []
        out: list[tuple[str, str]] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                self.problem(f"{self.at(key)}[{i}]", "must be a string")
            else:
                out.append((f"{self.at(key)}[{i}]", value))
        if required and not values:
            self.bad(key, "must not be empty")
        return out
