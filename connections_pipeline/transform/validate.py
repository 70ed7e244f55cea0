"""Split a frame into rows that pass its Pandera model and rows quarantined with reasons."""

import json
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from connections_pipeline.decoding_limits import MAX_QUARANTINED_VALUE_CHARS

ROW_INDEX = "__row__"
NUL = "\x00"


class SchemaMismatchError(ValueError):
    """The frame's columns or types are wrong: a bug in the pipeline, not a bad record."""


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pl.DataFrame
    quarantined: pl.DataFrame  # record_key, reason, payload
    failed_checks: dict[str, int]

    @property
    def passed(self) -> bool:
        return self.quarantined.is_empty()


def split_valid(
    frame: pl.DataFrame, schema: pa.DataFrameSchema, key_column: str
) -> ValidationOutcome:
    """Validate lazily (every failure at once) and quarantine exactly the failing rows."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    else:
        return ValidationOutcome(frame, _empty_quarantine(), {})
    schema_level = failures.filter(pl.col("index").is_null())
    if not schema_level.is_empty():
        problems = "; ".join(
            f"{row['column']}: {row['check']} ({row['failure_case']})"
            for row in schema_level.iter_rows(named=True)
        )
        raise SchemaMismatchError(f"{schema.name} does not fit the frame: {problems}")
    reasons = (
        failures.with_columns(
            pl.format("{} failed {}", pl.col("column"), pl.col("check")).alias("reason")
        )
        .group_by("index")
        .agg(pl.col("reason").unique().sort().str.join("; "))
        .rename({"index": ROW_INDEX})
        .with_columns(pl.col(ROW_INDEX).cast(pl.UInt32))
    )
    indexed = frame.with_row_index(ROW_INDEX)
    bad = indexed.join(reasons, on=ROW_INDEX, how="inner").sort(ROW_INDEX)
    good = indexed.join(reasons, on=ROW_INDEX, how="anti").drop(ROW_INDEX)
    quarantined = pl.DataFrame(
        {
            # A NUL cannot be stored in PostgreSQL text; the payload keeps it JSON-escaped.
            "record_key": [
                bounded(key)
                for key in bad[key_column]
                .cast(pl.String)
                .str.replace_all(NUL, "\\u0000", literal=True)
            ],
            "reason": bad["reason"],
            "payload": [
                json.dumps(
                    {name: bounded(value) for name, value in row.items()},
                    default=str,
                    ensure_ascii=False,
                )
                for row in _payload_rows(bad.drop(ROW_INDEX, "reason"))
            ],
        },
        schema={"record_key": pl.String, "reason": pl.String, "payload": pl.String},
    )
    counts = failures.group_by("check").len().iter_rows()
    return ValidationOutcome(good, quarantined, {str(check): n for check, n in counts})


def bounded(value: object) -> object:
    """`value`, or a text past MAX_QUARANTINED_VALUE_CHARS cut there with a marker giving its
    length: a row quarantined for a value past a decoding limit must not store it after all
    (its reason names the limit)."""
    if not isinstance(value, str) or len(value) <= MAX_QUARANTINED_VALUE_CHARS:
        return value
    return f"{value[:MAX_QUARANTINED_VALUE_CHARS]}… [truncated, {len(value):,} characters]"


def _payload_rows(frame: pl.DataFrame) -> list[dict]:
    """Rows for the payload JSON. Times are formatted by Polars: a row may be quarantined
    for a time Python's datetime cannot hold (year 0, year 10000)."""
    times = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    return frame.with_columns(pl.col(times).dt.to_string("iso")).to_dicts()


def _empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema={"record_key": pl.String, "reason": pl.String, "payload": pl.String})
