"""The token source as the snapshot reads it: one row per token, keyed by fingerprint."""

import polars as pl

# What an application keeps of `POST /auth/token`'s answer besides the token, optional in
# every source. They describe a connection Finch no longer answers for (every token revoked);
# a working token's `/introspect` always wins over them.
CONNECTION_DETAILS: tuple[str, ...] = (
    "customer_id",
    "customer_name",
    "provider_id",
    "company_id",
    "company_name",
)
TOKEN_FRAME_SCHEMA = {
    "token_fingerprint": pl.String,
    "source_connection_id": pl.String,
    "source_disconnected": pl.Boolean,
    "issued_at": pl.Datetime("us", "UTC"),
    **{f"source_{name}": pl.String for name in CONNECTION_DETAILS},
}
# The columns of TOKEN_FRAME_SCHEMA that describe the token's connection, not the token.
SOURCE_DETAIL_COLUMNS: tuple[str, ...] = tuple(f"source_{name}" for name in CONNECTION_DETAILS)
