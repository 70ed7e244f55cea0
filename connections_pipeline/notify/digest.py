"""The needs-action digest: what changed since the last digest announced, in Polars.

A connection is announced when the digest first names it as needing action, and leaves the
announced set when a digest names it as recovered (or it is gone from the snapshot). Before
any digest the set is empty, so the first one names every connection that needs action.
"""

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from connections_pipeline.connect_links.reauth import open_reauth_links

_ANNOUNCED = ("connection_key", "connection_id", "announced_at")


@dataclass(frozen=True)
class DigestChanges:
    newly: pl.DataFrame
    recovered: pl.DataFrame
    announced: pl.DataFrame

    @property
    def changed(self) -> bool:
        return bool(self.newly.height or self.recovered.height)


def digest_changes(
    current: pl.DataFrame,
    versions: pl.DataFrame,
    ledger: pl.DataFrame,
    announced: pl.DataFrame,
    as_of: datetime,
    now: datetime,
) -> DigestChanges:
    """The connections that newly need action, with since when (`versions`: each one's
    current history version's valid_from) and their open re-auth link; those announced
    before that no longer do; and the announced set once this digest is queued."""
    needing = current.filter(pl.col("needs_action") & pl.col("connection_id").is_not_null())
    since = versions.select("connection_key", pl.col("valid_from").alias("needs_action_since"))
    newly = (
        needing.join(announced.select("connection_key"), on="connection_key", how="anti")
        .join(since, on="connection_key", how="left")
        .join(open_reauth_links(ledger, as_of), on="connection_id", how="left")
        .sort("company_name", "connection_id", nulls_last=True)
    )
    recovered = announced.join(
        needing.select("connection_key"), on="connection_key", how="anti"
    ).sort("connection_id", nulls_last=True)
    # Those announced before keep when they were first announced.
    now_announced = (
        needing.select("connection_key", "connection_id")
        .join(announced.select("connection_key", "announced_at"), on="connection_key", how="left")
        .with_columns(pl.col("announced_at").fill_null(pl.lit(now).cast(pl.Datetime("us", "UTC"))))
    )
    return DigestChanges(newly, recovered, now_announced.select(_ANNOUNCED))
