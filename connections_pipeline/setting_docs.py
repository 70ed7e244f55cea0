"""What each setting means: the reference of every environment variable the pipeline reads.

The documentation's settings page is generated from this and from the binding tables in
`settings.py` (defaults, and which resource reads each); a test fails when a setting the code
reads has no entry here.
"""

from collections.abc import Mapping
from types import MappingProxyType

# name -> (default as people read it, meaning)
SETTING_DOCS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "FINCH_BASE_URL": (
            "unset: the embedded emulator",
            "Finch API base URL, e.g. `https://api.tryfinch.com`. Unset with a token file or query"
            " set is refused: the emulator knows none of your tokens",
        ),
        "FINCH_CLIENT_ID": (
            "unset",
            "application credentials (Connect sessions)",
        ),
        "FINCH_CLIENT_SECRET": (
            "unset",
            "application credentials (Connect sessions)",
        ),
        "CONNECTIONS_TOKENS_FILE": (
            "unset",
            "JSON Lines with an `access_token` field, or CSV with an `access_token` column; "
            "optional `connection_id`, `issued_at` (or `created_at`), what `POST /auth/token` "
            "answered (`customer_id`, `customer_name`, `provider_id`, `company_id`) and "
            "`company_name`, and `disconnected` (or `revoked`)",
        ),
        "CONNECTIONS_SESSIONS_FILE": (
            "unset",
            "JSON Lines of Connect sessions created by your application",
        ),
        "CONNECTIONS_TOKENS_URL": (
            "unset",
            "a SQLAlchemy URL of your application database and a query returning an `access_token`"
            " column (same optional columns)",
        ),
        "CONNECTIONS_TOKENS_QUERY": (
            "unset",
            "a SQLAlchemy URL of your application database and a query returning an `access_token`"
            " column (same optional columns)",
        ),
        "CONNECTIONS_SESSIONS_QUERY": (
            "unset",
            "a query on the same database returning session rows",
        ),
        "CONNECTIONS_TOKENS_SOURCE": (
            "`auto`",
            "`file`, `sql`, or `sandbox` (the tokens of an emulator served at `FINCH_BASE_URL`)",
        ),
        "CONNECTIONS_WAREHOUSE_URL": (
            "`duckdb:///data/connections.duckdb`",
            "SQLAlchemy URL of the warehouse: DuckDB, `postgresql://…` or "
            "`snowflake://USER:PASSWORD@ACCOUNT/DATABASE?warehouse=WH&role=ROLE` (see Snowflake). "
            "A DuckDB path must be a new file or a DuckDB database: an existing file without "
            "DuckDB's header (the tokens CSV named by mistake, a SQLite file, an empty file) is "
            "refused (exit 2), since DuckDB would open it as a read-only view and every load would"
            " vanish. A DuckDB file another process holds (another run, `dagster dev`, a SQL "
            "client) is no setting error: the sync fails once with `the warehouse is busy: another"
            " process (PID …) holds the DuckDB file …` (exit 4); run again once that process has "
            "finished",
        ),
        "CONNECTIONS_WAREHOUSE_CONNECT_ARGS": (
            "unset",
            "JSON object of the database driver's own connection arguments, e.g. for Snowflake "
            '`{"private_key_file": "/run/secrets/sf.p8"}` or `{"host": '
            '"acct.privatelink.snowflakecomputing.com"}`; may hold secrets (shown by key only, '
            "scrubbed from messages). See Snowflake",
        ),
        "CONNECTIONS_MEMORY_LIMIT_MB": (
            "2048",
            "memory budget of a sync beyond its Python objects, in MB (at least 256): Finch's "
            "answers are spooled to Parquet files in a folder of their own under the system's "
            "temp folder (`TMPDIR`) in chunks of 1/64 of it and loaded from there, and an embedded"
            " DuckDB gets a quarter of it before it spills to `<file>.tmp`. The default suits a "
            "4 GiB run container; see Large fleets and Performance",
        ),
        "CONNECTIONS_WAREHOUSE_SCHEMA": (
            "`finch`",
            "schema of the tables: a plain identifier, not `pg_*`, `information_schema`, "
            "`temp`/`system`, nor a DuckDB file's own name",
        ),
        "CONNECTIONS_EXPORT_URL": (
            "`./data/exports`",
            "where the CSV exports go: a folder (relative to the working directory) or an fsspec "
            "URL such as `s3://bucket/prefix` (see CSV exports)",
        ),
        "CONNECTIONS_EXPORT_STORAGE_OPTIONS": (
            "unset",
            'JSON object of fsspec filesystem options for that URL, e.g. `{"endpoint_url": '
            '"https://minio.internal:9000"}`; may hold credentials',
        ),
        "CONNECTIONS_SYNC_CRON": (
            "`0 6 * * *`",
            "schedule of the sync, UTC",
        ),
        "CONNECTIONS_FINCH_CLIENT_TYPE": (
            "unset",
            "the `client_type` every token's application must have (`development`, `production` or"
            " `sandbox`); with `FINCH_CLIENT_ID`, a token of another application holds the run",
        ),
        "CONNECTIONS_HOLD_LIVE_DROP_SHARE": (
            "0.2",
            "hold a run in which more than this share of the live connections would leave Live...",
        ),
        "CONNECTIONS_HOLD_MIN_COUNT": (
            "5",
            "...once at least this many do (the same floor for tokens)",
        ),
        "CONNECTIONS_HOLD_TOKEN_FAILURE_SHARE": (
            "0.2",
            "hold a run in which more than this share of the tokens got no usable answer",
        ),
        "CONNECTIONS_MAX_REQUESTS_PER_RUN": (
            "0 (no limit)",
            "Finch requests one sync may send; connections that do not fit wait for the next run "
            "(see *Large fleets*)",
        ),
        "CONNECTIONS_RUN_DEADLINE_MINUTES": (
            "0 (none)",
            "introspections not started by then wait for the next run",
        ),
        "CONNECTIONS_COMPANY_SHARE": (
            "0.5",
            "the largest share of a run's time spent on `/employer/company` (20 a minute); names "
            "beyond it are fetched by later runs, oldest first",
        ),
        "CONNECTIONS_FRESHNESS_HOURS": (
            "26",
            "`finch_connections`' freshness warns when the last loaded sync is older than this (a "
            "daily schedule plus two hours), and fails at twice that",
        ),
        "CONNECTIONS_FINCH_CONCURRENCY": (
            "16",
            "requests in flight at once",
        ),
        "CONNECTIONS_FINCH_TIMEOUT_SECONDS": (
            "30",
            "per-attempt deadline",
        ),
        "CONNECTIONS_FINCH_MAX_ATTEMPTS": (
            "5",
            "attempts per call before it counts as failed",
        ),
        "CONNECTIONS_FINCH_TIME_SCALE": (
            "1",
            "shrink Finch's windows to match an emulator's `--time-scale`",
        ),
        "CONNECTIONS_SQL_MODELS_DIR": (
            "the package's `dbt_like_sql/`",
            "folder of the SQL models (see SQL models)",
        ),
        "DAGSTER_PG_URL": (
            "unset",
            "the Dagster instance's PostgreSQL, read by `examples/dagster.yaml`; must name the "
            "psycopg2 driver: `postgresql+psycopg2://user:password@host:5432/dagster` (see "
            "Production)",
        ),
        "CONNECTIONS_SANDBOX_SEED": (
            "7, 200",
            "the embedded emulator's dataset",
        ),
        "CONNECTIONS_SANDBOX_CONNECTIONS": (
            "7, 200",
            "the embedded emulator's dataset",
        ),
        "FINCH_WEBHOOK_SECRET": (
            "unset",
            "the webhook secret Finch shows (base64), for `connections-pipeline webhooks serve`; "
            "set where the code location loads, it turns the webhook sensor on by default (see "
            "Webhooks)",
        ),
        "CONNECTIONS_WEBHOOK_SENSOR_SECONDS": (
            "30",
            "seconds between ticks of the webhook sensor",
        ),
        "CONNECTIONS_NOTIFY_RUNS": (
            "unset: nothing is sent",
            "Apprise URLs (comma or space separated) for run alerts, the needs-action digest and "
            "the export files; they hold secrets, never shown (see Notifications)",
        ),
        "CONNECTIONS_NOTIFY_NEEDS_ACTION": (
            "unset: nothing is sent",
            "Apprise URLs (comma or space separated) for run alerts, the needs-action digest and "
            "the export files; they hold secrets, never shown (see Notifications)",
        ),
        "CONNECTIONS_NOTIFY_EXPORTS": (
            "unset: nothing is sent",
            "Apprise URLs (comma or space separated) for run alerts, the needs-action digest and "
            "the export files; they hold secrets, never shown (see Notifications)",
        ),
        "CONNECTIONS_NOTIFY_ATTACH_MAX_MB": (
            "10",
            "files above this total are sent as their locations, not attached",
        ),
        "CONNECTIONS_NOTIFY_TIMEOUT_SECONDS": (
            "20",
            "how long one delivery may take before it is recorded as failed and left for later",
        ),
        "DAGSTER_WEBSERVER_URL": (
            "unset",
            "e.g. `https://dagster.internal`: run alerts link to the run there",
        ),
        "DAGSTER_HOME": (
            "`./data/dagster_home` for `connections-pipeline run`",
            "the Dagster instance folder: its `dagster.yaml`, run history and logs",
        ),
    }
)
