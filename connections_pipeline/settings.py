"""Every setting the pipeline reads from the environment, in one place.

Each present variable is bound with Dagster's `EnvVar`, so the value (secrets included) is
resolved when a run starts and never stored in the definitions or shown in the UI; an absent
one leaves the documented default.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import sqlalchemy as sa

from connections_pipeline.memory_budget import (
    DEFAULT_MEMORY_LIMIT_MB,
    MEMORY_LIMIT_SETTING,
    MemoryBudget,
)
from connections_pipeline.notify.destinations import CHANNEL_SETTINGS, destinations
from connections_pipeline.resources import (
    ExportDestinationResource,
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.resources.export_destination import DEFAULT_EXPORT_URL
from connections_pipeline.resources.notifier import (
    DEFAULT_ATTACH_MAX_MB,
    DEFAULT_NOTIFY_TIMEOUT_SECONDS,
)
from connections_pipeline.resources.sync_guard import (
    COMPANY_SHARE_SETTING,
    DEADLINE_SETTING,
    MAX_REQUESTS_SETTING,
)
from connections_pipeline.resources.warehouse_resource import DEFAULT_WAREHOUSE_URL
from connections_pipeline.transform.guards import (
    CLIENT_TYPE_SETTING,
    FINCH_CLIENT_TYPES,
    LIVE_DROP_MIN_SETTING,
    LIVE_DROP_SHARE_SETTING,
    TOKEN_FAILURE_SHARE_SETTING,
)
from connections_pipeline.transform.polling import RunBudget
from connections_pipeline.warehouse import SCHEMA_SETTING, URL_SETTING, validate_schema_name
from connections_pipeline.warehouse.engine import (
    CONNECT_ARGS_SETTING,
    check_duckdb_file,
    check_duckdb_folder,
    check_schema_for_url,
    parse_connect_args,
    parse_warehouse_url,
)

DEFAULT_SYNC_CRON = "0 6 * * *"
FRESHNESS_SETTING = "CONNECTIONS_FRESHNESS_HOURS"
# A daily sync, plus two hours for the run itself.
DEFAULT_FRESHNESS_HOURS = 26.0
# The Dagster instance's Postgres URL, read by `examples/dagster.yaml` (dagster-postgres).
INSTANCE_URL_SETTING = "DAGSTER_PG_URL"
# dagster-postgres sends `NOTIFY run_events, %s`: psycopg2 fills the value in on the client,
# psycopg 3 binds it on the server, where NOTIFY takes no parameter. SQLAlchemy 2.1 picks
# psycopg 3 for a bare `postgresql://` URL, so the driver must be named.
INSTANCE_URL_DRIVER = "postgresql+psycopg2"
INSTANCE_URL_EXAMPLE = f"{INSTANCE_URL_DRIVER}://user:password@host:5432/dagster"

# environment variable -> (resource field, default); numbers are parsed where read
FINCH_SETTINGS: dict[str, tuple[str, Any]] = {
    "FINCH_BASE_URL": ("base_url", None),
    "FINCH_CLIENT_ID": ("client_id", None),
    "FINCH_CLIENT_SECRET": ("client_secret", None),
    CLIENT_TYPE_SETTING: ("client_type", None),
    "CONNECTIONS_FINCH_TIME_SCALE": ("time_scale", 1.0),
    "CONNECTIONS_FINCH_CONCURRENCY": ("max_concurrency", 16),
    "CONNECTIONS_FINCH_TIMEOUT_SECONDS": ("timeout_seconds", 30.0),
    "CONNECTIONS_FINCH_MAX_ATTEMPTS": ("max_attempts", 5),
    "CONNECTIONS_SANDBOX_SEED": ("sandbox_seed", 7),
    "CONNECTIONS_SANDBOX_CONNECTIONS": ("sandbox_connections", 200),
}
TOKEN_SOURCE_SETTINGS: dict[str, tuple[str, Any]] = {
    "CONNECTIONS_TOKENS_SOURCE": ("kind", "auto"),
    "CONNECTIONS_TOKENS_FILE": ("tokens_file", None),
    "CONNECTIONS_SESSIONS_FILE": ("sessions_file", None),
    "CONNECTIONS_TOKENS_URL": ("tokens_url", None),
    "CONNECTIONS_TOKENS_QUERY": ("tokens_query", None),
    "CONNECTIONS_SESSIONS_QUERY": ("sessions_query", None),
}
WAREHOUSE_SETTINGS: dict[str, tuple[str, Any]] = {
    "CONNECTIONS_WAREHOUSE_URL": ("url", DEFAULT_WAREHOUSE_URL),
    "CONNECTIONS_WAREHOUSE_SCHEMA": ("schema_name", "finch"),
    CONNECT_ARGS_SETTING: ("connect_args", None),
    MEMORY_LIMIT_SETTING: ("memory_limit_mb", DEFAULT_MEMORY_LIMIT_MB),
}
GUARD_SETTINGS: dict[str, tuple[str, Any]] = {
    LIVE_DROP_SHARE_SETTING: ("max_live_drop_share", 0.2),
    LIVE_DROP_MIN_SETTING: ("min_count", 5),
    TOKEN_FAILURE_SHARE_SETTING: ("max_token_failure_share", 0.2),
    MAX_REQUESTS_SETTING: ("max_requests_per_run", 0),
    DEADLINE_SETTING: ("deadline_minutes", 0.0),
    COMPANY_SHARE_SETTING: ("company_share", RunBudget.company_share),
}
# Numbers that may be 0 (every other number must be positive), and shares (at most 1).
ZERO_ALLOWED = frozenset(GUARD_SETTINGS)
SHARES = frozenset({LIVE_DROP_SHARE_SETTING, TOKEN_FAILURE_SHARE_SETTING, COMPANY_SHARE_SETTING})
EXPORT_SETTINGS: dict[str, tuple[str, Any]] = {
    "CONNECTIONS_EXPORT_URL": ("url", DEFAULT_EXPORT_URL),
    "CONNECTIONS_EXPORT_STORAGE_OPTIONS": ("storage_options", None),
}

# Apprise URLs per channel (they hold secrets: bound as EnvVars, never shown).
NOTIFY_SETTINGS: dict[str, tuple[str, Any]] = {
    **{setting: (channel, None) for channel, setting in CHANNEL_SETTINGS.items()},
    "CONNECTIONS_NOTIFY_ATTACH_MAX_MB": ("attach_max_mb", DEFAULT_ATTACH_MAX_MB),
    "CONNECTIONS_NOTIFY_TIMEOUT_SECONDS": ("timeout_seconds", DEFAULT_NOTIFY_TIMEOUT_SECONDS),
    "DAGSTER_WEBSERVER_URL": ("webserver_url", None),
}


class SettingError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def _bind(settings: dict[str, tuple[str, Any]], env: Mapping[str, str]) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for name, (field, default) in settings.items():
        if not env.get(name):
            bound[field] = default
        elif isinstance(default, bool | int | float) and not isinstance(default, bool):
            bound[field] = _number(name, env[name], type(default))
        else:
            bound[field] = dg.EnvVar(name)
    return bound


NUMBER_KINDS = {int: "a whole number", float: "a number"}


def _number(name: str, text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise SettingError(f"{name} must be {NUMBER_KINDS[kind]}, got {text!r}") from None
    if value < 0 or (value == 0 and name not in ZERO_ALLOWED) or value != value:
        raise SettingError(f"{name} must be positive, got {text!r}")
    if name in SHARES and value > 1:
        raise SettingError(f"{name} must be a share from 0 to 1, got {text!r}")
    return value


def _check_token_source(env: Mapping[str, str]) -> None:
    """The embedded emulator knows only its own tokens: the application's tokens sent there
    would all answer 401 and every live connection would look disconnected."""
    if env.get("FINCH_BASE_URL"):
        return
    for name in ("CONNECTIONS_TOKENS_FILE", "CONNECTIONS_TOKENS_URL"):
        if env.get(name):
            raise SettingError(
                f"{name} is set but FINCH_BASE_URL is not: your tokens would be sent to the "
                "embedded Finch emulator, which knows none of them; set FINCH_BASE_URL "
                "(e.g. https://api.tryfinch.com)"
            )


def _check_memory_limit(env: Mapping[str, str]) -> None:
    if text := env.get(MEMORY_LIMIT_SETTING):
        try:
            MemoryBudget(int(_number(MEMORY_LIMIT_SETTING, text, int)))
        except ValueError as exc:
            raise SettingError(str(exc)) from None


def _check_choices(env: Mapping[str, str]) -> None:
    client_type = env.get(CLIENT_TYPE_SETTING)
    if client_type and client_type not in FINCH_CLIENT_TYPES:
        raise SettingError(
            f"{CLIENT_TYPE_SETTING} must be one of {', '.join(FINCH_CLIENT_TYPES)}, "
            f"got {client_type!r}"
        )


def _check_warehouse(env: Mapping[str, str]) -> None:
    """The schema name ends up in SQL: refuse anything but a usable identifier now, before
    any run connects to the warehouse; and a DuckDB file where no folder can hold it, or
    an existing file that is not a DuckDB database (the tokens CSV named by mistake)."""
    schema = env.get(SCHEMA_SETTING) or WAREHOUSE_SETTINGS[SCHEMA_SETTING][1]
    try:
        validate_schema_name(schema)
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    try:
        url = parse_warehouse_url(env.get(URL_SETTING) or DEFAULT_WAREHOUSE_URL)
    except ValueError:
        return  # reported, naming URL_SETTING, when the warehouse is opened
    try:
        parse_connect_args(env.get(CONNECT_ARGS_SETTING))
        check_schema_for_url(url, schema)
        check_duckdb_folder(url)
        check_duckdb_file(url)
    except ValueError as exc:
        raise SettingError(str(exc)) from None


def _check_notify(env: Mapping[str, str]) -> None:
    """Every notification URL must be one Apprise can use: a typo found at the first held
    run would be an alert nobody gets."""
    for channel, setting in CHANNEL_SETTINGS.items():
        try:
            destinations(setting, env.get(setting), channel)
        except ValueError as exc:
            raise SettingError(str(exc)) from None


def notifications_configured(env: Mapping[str, str]) -> bool:
    return any(env.get(setting) for setting in CHANNEL_SETTINGS.values())


def notifier_resource(env: Mapping[str, str]) -> NotifierResource:
    """The notifier with plain values, for a command outside Dagster (`notify test`)."""
    _check_notify(env)
    values: dict[str, Any] = {}
    for name, (field, default) in NOTIFY_SETTINGS.items():
        text = env.get(name)
        if not text:
            values[field] = default
        elif isinstance(default, float):
            values[field] = _number(name, text, float)
        else:
            values[field] = text
    return NotifierResource(**values)


def build_resources(env: Mapping[str, str]) -> dict[str, Any]:
    """Every resource, bound to the environment; SettingError naming the variable when a
    value cannot work, before anything is read or written."""
    _check_warehouse(env)
    _check_notify(env)
    _check_token_source(env)
    _check_choices(env)
    _check_memory_limit(env)
    freshness_hours(env)
    webhook_sensor_seconds(env)
    finch = FinchResource(**_bind(FINCH_SETTINGS, env))
    return {
        "finch": finch,
        "sync_guard": SyncGuardResource(**_bind(GUARD_SETTINGS, env)),
        "token_source": TokenSourceResource(**_bind(TOKEN_SOURCE_SETTINGS, env)),
        "warehouse": WarehouseResource(**_bind(WAREHOUSE_SETTINGS, env)),
        "export_destination": ExportDestinationResource(**_bind(EXPORT_SETTINGS, env)),
        "notifier": NotifierResource(**_bind(NOTIFY_SETTINGS, env)),
    }


WEBHOOK_SENSOR_SETTING = "CONNECTIONS_WEBHOOK_SENSOR_SECONDS"
DEFAULT_WEBHOOK_SENSOR_SECONDS = 30
WEBHOOK_SECRET_SETTING = "FINCH_WEBHOOK_SECRET"


def webhook_sensor_seconds(env: Mapping[str, str]) -> int:
    """Seconds between ticks of the webhook sensor."""
    text = env.get(WEBHOOK_SENSOR_SETTING)
    return (
        int(_number(WEBHOOK_SENSOR_SETTING, text, int)) if text else DEFAULT_WEBHOOK_SENSOR_SECONDS
    )


def webhooks_configured(env: Mapping[str, str]) -> bool:
    """Whether this deployment receives webhooks: the secret the receiver needs is set. The
    webhook sensor runs by default only then (a DuckDB inbox nobody feeds needs no reading
    every 30 seconds)."""
    return bool(env.get(WEBHOOK_SECRET_SETTING))


def warehouse_resource(env: Mapping[str, str]) -> WarehouseResource:
    """The warehouse resource with plain values, for a process outside Dagster (the webhook
    receiver); SettingError naming the variable when a value cannot work."""
    _check_warehouse(env)
    return WarehouseResource(
        url=env.get(URL_SETTING) or DEFAULT_WAREHOUSE_URL,
        schema_name=env.get(SCHEMA_SETTING) or WAREHOUSE_SETTINGS[SCHEMA_SETTING][1],
        connect_args=env.get(CONNECT_ARGS_SETTING) or None,
    )


def sync_cron(env: Mapping[str, str]) -> str:
    return env.get("CONNECTIONS_SYNC_CRON") or DEFAULT_SYNC_CRON


def freshness_hours(env: Mapping[str, str]) -> float:
    """How old `finch_connections` may get before its freshness warns: the sync schedule's
    interval plus the time a sync takes."""
    text = env.get(FRESHNESS_SETTING)
    return float(_number(FRESHNESS_SETTING, text, float)) if text else DEFAULT_FRESHNESS_HOURS


def check_instance_storage_url(env: Mapping[str, str]) -> None:
    """Refuse a `DAGSTER_PG_URL` that dagster-postgres cannot use, naming the working form.

    With any driver but psycopg2 the instance loads, then every event the daemon stores
    fails (`syntax error at or near "$1"`): schedules never launch a run. Saying so when the
    code location loads beats a daemon that silently does nothing. Only the URL's scheme is
    quoted: the rest may hold a password.
    """
    url = env.get(INSTANCE_URL_SETTING)
    if not url:
        return
    try:
        driver = sa.make_url(url).drivername
    except (sa.exc.ArgumentError, ValueError):
        driver = None
    if driver != INSTANCE_URL_DRIVER:
        scheme = f"{driver}://" if driver else "an unparsable URL"
        raise SettingError(
            f"{INSTANCE_URL_SETTING} must name the psycopg2 driver that dagster-postgres "
            f"uses: write it as {INSTANCE_URL_EXAMPLE} (got {scheme})"
        )
