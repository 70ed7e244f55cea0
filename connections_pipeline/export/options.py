"""How an export is shaped: sort, filters, extra columns and timestamp format, validated.

Every check here runs before the warehouse is read or a file is written, and each error
names the run-config setting at fault (e.g. `filters[1].column`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.export.columns import ISO_8601_UTC, SORT_KEYS
from connections_pipeline.export.errors import ExportSettingError

_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass(frozen=True)
class ColumnFilter:
    """Keep rows whose `column` equals `equals`, or is one of `one_of` (set exactly one).

    Values are given as text or as YAML scalars and converted to the column's type:
    `"3"` or `3` for `entity_count`, `true` for `needs_action`, an ISO 8601 time for a
    timestamp column (UTC when it has no offset).
    """

    column: str
    equals: Any = None
    one_of: Sequence[Any] | None = None


@dataclass(frozen=True)
class ExportOptions:
    """The shape of every file of one export run.

    Attributes:
        sort_by: `company_name` or `connection_id`, the Dashboard's two sorts. Blank values
            go last; ties are ordered by `connection_key`.
        descending: sort Z→A instead of A→Z.
        needs_action: keep only rows whose `needs_action` is this value (None: all rows).
        filters: further filters on any `finch_connections` column, all of which must hold.
        extra_columns: `finch_connections` columns appended after the Dashboard's, with
            their column name as header.
        timestamp_format: a `strftime` format applied to timestamps in UTC; ISO 8601
            (`2026-11-29T06:00:00Z`) by default.
    """

    sort_by: str = "company_name"
    descending: bool = False
    needs_action: bool | None = None
    filters: Sequence[ColumnFilter] = ()
    extra_columns: Sequence[str] = ()
    timestamp_format: str = ISO_8601_UTC


def check_options(options: ExportOptions, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """Validate `options` against the columns of `finch_connections`.

    Args:
        options: the export's settings.
        schema: column name → Polars dtype of the table being exported.

    Returns:
        The row filter the options describe (`pl.lit(True)` when there is none).

    Raises:
        ExportSettingError: naming the first unusable setting.
    """
    if options.sort_by not in SORT_KEYS:
        raise ExportSettingError(
            f"sort_by {options.sort_by!r} is not a sort key; use one of {', '.join(SORT_KEYS)}"
        )
    _check_extra_columns(options.extra_columns, schema)
    _check_timestamp_format(options.timestamp_format)
    condition = pl.lit(True)
    if options.needs_action is not None:
        condition = condition & (pl.col("needs_action") == options.needs_action)
    for index, column_filter in enumerate(options.filters):
        condition = condition & _filter_expression(f"filters[{index}]", column_filter, schema)
    return condition


def _check_extra_columns(extra: Sequence[str], schema: Mapping[str, pl.DataType]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(extra):
        if name not in schema:
            raise ExportSettingError(
                f"extra_columns[{index}] {name!r} is not a column of finch_connections; "
                f"columns: {', '.join(schema)}"
            )
        if name in seen:
            raise ExportSettingError(f"extra_columns[{index}] {name!r} is listed twice")
        seen.add(name)


def _check_timestamp_format(text: str) -> None:
    if not isinstance(text, str) or "%" not in text:
        raise ExportSettingError(
            f"timestamp_format {text!r} is not a strftime format (e.g. {ISO_8601_UTC!r})"
        )
    try:
        datetime(2026, 11, 29, 6, tzinfo=UTC).strftime(text)
    except (ValueError, UnicodeError) as exc:
        raise ExportSettingError(f"timestamp_format {text!r} cannot be used: {exc}") from None


def _filter_expression(
    setting: str, column_filter: ColumnFilter, schema: Mapping[str, pl.DataType]
) -> pl.Expr:
    column = column_filter.column
    if column not in schema:
        raise ExportSettingError(
            f"{setting}.column {column!r} is not a column of finch_connections; "
            f"columns: {', '.join(schema)}"
        )
    has_equals = column_filter.equals is not None
    has_one_of = column_filter.one_of is not None
    if has_equals == has_one_of:
        raise ExportSettingError(f"{setting} must set exactly one of equals or one_of")
    dtype = schema[column]
    if has_equals:
        value = _coerce(f"{setting}.equals", column_filter.equals, dtype)
        return pl.col(column) == pl.lit(value, dtype=dtype)
    values = column_filter.one_of
    if isinstance(values, str | bytes) or not values:
        raise ExportSettingError(f"{setting}.one_of must be a non-empty list of values")
    coerced = [_coerce(f"{setting}.one_of[{i}]", value, dtype) for i, value in enumerate(values)]
    return pl.col(column).is_in(pl.Series(coerced, dtype=dtype).implode())


def _coerce(setting: str, value: Any, dtype: pl.DataType) -> Any:
    """`value` as the Python value of a `dtype` cell, or ExportSettingError naming `setting`."""
    try:
        if dtype == pl.Boolean:
            return _to_bool(value)
        if dtype.is_integer():
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if dtype.is_float():
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if isinstance(dtype, pl.Datetime):
            return _to_utc(value)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise ExportSettingError(f"{setting} {value!r} is not a valid {dtype} value") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


def _to_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    else:
        raise ValueError(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
