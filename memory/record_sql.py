"""Chroma `where` clauses, as `PhotoFilters.where()` writes them, turned into SQL over the manifest's
JSON photo records (`photos.record`), so a filtered page of the library is answered by SQLite too.

One source of truth: the filters are written once, as Chroma `where`, and translated here with
Chroma's meaning: a record without the field never matches, `$contains` means "the list holds this
value". An operator not translated here raises `UnsupportedFilterError`, and the caller asks Chroma.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_COMPARISONS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class UnsupportedFilterError(ValueError):
    """A `where` clause this module does not translate (Chroma still understands it)."""


@dataclass(frozen=True)
class SqlCondition:
    """A boolean SQL expression over the column `record`, and its parameters in order."""

    sql: str
    params: tuple[Any, ...]


def where_sql(where: dict[str, Any], record: str = "record") -> SqlCondition:
    """The condition `where` puts on the JSON column named `record`."""
    if not isinstance(where, dict) or len(where) != 1:
        raise UnsupportedFilterError(f"not a single-key where clause: {where!r}")
    ((key, condition),) = where.items()
    if key in ("$and", "$or"):
        parts = [where_sql(clause, record) for clause in condition]
        if not parts:
            raise UnsupportedFilterError(f"an empty {key}")
        joiner = " AND " if key == "$and" else " OR "
        return SqlCondition(
            "(" + joiner.join(p.sql for p in parts) + ")", tuple(v for p in parts for v in p.params)
        )
    if key.startswith("$"):
        raise UnsupportedFilterError(f"the operator {key} is not translated")
    path = _json_path(key)
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    if len(condition) != 1:
        raise UnsupportedFilterError(f"several operators on {key}: {condition!r}")
    ((op, value),) = condition.items()
    if op in _COMPARISONS:
        _check_scalar(value)
        return SqlCondition(f"json_extract({record}, ?) {_COMPARISONS[op]} ?", (path, value))
    if op == "$in":
        if not isinstance(value, list) or not value:
            raise UnsupportedFilterError(f"$in needs a non-empty list: {value!r}")
        for item in value:
            _check_scalar(item)
        marks = ", ".join("?" * len(value))
        return SqlCondition(f"json_extract({record}, ?) IN ({marks})", (path, *value))
    if op == "$contains":
        _check_scalar(value)
        return SqlCondition(f"EXISTS (SELECT 1 FROM json_each({record}, ?) WHERE value = ?)", (path, value))
    raise UnsupportedFilterError(f"the operator {op} is not translated")


def _json_path(key: str) -> str:
    """A JSON path naming the field exactly (quoted, so a dot or a space in a key is no path step)."""
    if '"' in key or "\\" in key:
        raise UnsupportedFilterError(f"a field name SQLite's JSON paths cannot quote: {key!r}")
    return f'$."{key}"'


def _check_scalar(value: object) -> None:
    # A boolean would compare as 0/1 against JSON's true/false: leave it to Chroma.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UnsupportedFilterError(f"a value SQL is not given here: {value!r}")
