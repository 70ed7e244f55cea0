"""Decode raw JSON bodies into typed columns without letting one bad body sink the batch."""

import polars as pl

CHUNK_ROWS = 2_000

INTROSPECTION_DTYPE = pl.Struct(
    {
        "connection_id": pl.String,
        "connection_status": pl.Struct(
            {"status": pl.String, "last_successful_sync": pl.String, "message": pl.String}
        ),
        "connection_type": pl.String,
        "products": pl.List(pl.String),
        "provider_id": pl.String,
        "company_id": pl.String,
        "customer_id": pl.String,
        "customer_name": pl.String,
        "customer_email": pl.String,
        "manual": pl.Boolean,
        "client_id": pl.String,
        "client_type": pl.String,
        "authentication_methods": pl.List(pl.Struct({"type": pl.String})),
        "entities": pl.List(
            pl.Struct(
                {"id": pl.String, "name": pl.String, "source_id": pl.String, "status": pl.String}
            )
        ),
    }
)
JOBS_DTYPE = pl.Struct(
    {
        "data": pl.List(
            pl.Struct(
                {
                    "type": pl.String,
                    "status": pl.String,
                    "created_at": pl.String,
                    "scheduled_at": pl.String,
                }
            )
        )
    }
)
COMPANY_DTYPE = pl.Struct({"id": pl.String, "legal_name": pl.String})
PROVIDERS_DTYPE = pl.List(pl.Struct({"id": pl.String, "display_name": pl.String}))


def decode_bodies(
    frame: pl.DataFrame, dtype: pl.DataType, column: str = "body"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode `column` as JSON of `dtype` into a struct column named `decoded`.

    Returns (decoded rows, rejected rows with a `reason`). Decoding runs on whole chunks in
    Rust; only a chunk that fails is retried row by row, so the cost of hostile input is paid
    only where it occurs.
    """
    decoded: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    for offset in range(0, frame.height, CHUNK_ROWS):
        chunk = frame.slice(offset, CHUNK_ROWS)
        try:
            decoded.append(_decode(chunk, dtype, column))
        except pl.exceptions.PolarsError:
            good, bad = _decode_row_by_row(chunk, dtype, column)
            decoded.extend(good)
            rejected.extend(bad)
    empty = frame.clear().with_columns(pl.lit(None, dtype=dtype).alias("decoded"))
    good_frame = pl.concat(decoded, how="vertical") if decoded else empty
    bad_frame = (
        pl.concat(rejected, how="vertical")
        if rejected
        else frame.clear().with_columns(pl.lit(None, dtype=pl.String).alias("reason"))
    )
    return good_frame, bad_frame


def _decode(chunk: pl.DataFrame, dtype: pl.DataType, column: str) -> pl.DataFrame:
    return chunk.with_columns(pl.col(column).str.json_decode(dtype).alias("decoded"))


def _decode_row_by_row(
    chunk: pl.DataFrame, dtype: pl.DataType, column: str
) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    good: list[pl.DataFrame] = []
    bad: list[pl.DataFrame] = []
    for index in range(chunk.height):
        row = chunk.slice(index, 1)
        try:
            good.append(_decode(row, dtype, column))
        except pl.exceptions.PolarsError as exc:
            reason = f"malformed {column}: {str(exc).splitlines()[0][:200]}"
            bad.append(row.with_columns(pl.lit(reason).alias("reason")))
    return good, bad
