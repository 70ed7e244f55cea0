"""How a step fails when a person must act: once, naming the setting, never with a secret.

A wrong setting fails the same way on every retry, so such a failure is never retried; its
`cause` metadata lets `connections-pipeline run` tell it (exit 2) and a held sync (exit 3)
from any other failure.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa

from connections_pipeline.redaction import safe_database_url
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.resources.redacted_fields import scrub_resources
from connections_pipeline.warehouse import CONNECTIONS, Warehouse, WarehouseConnectionError

FAILURE_CAUSE = "cause"
# BUSY: another process holds the warehouse (a DuckDB file); nothing to fix, try again later.
SETTING_CAUSE, HELD_CAUSE, BUSY_CAUSE = "setting", "held", "busy"


def setting_failure(message: str, *resources: Any) -> dg.Failure:
    """A failure to fix a setting or an input; `message` loses every secret `resources`
    hold."""
    return dg.Failure(
        description=scrub_resources(message, *resources),
        metadata={FAILURE_CAUSE: SETTING_CAUSE},
        allow_retries=False,
    )


@contextmanager
def opened_warehouse(warehouse: WarehouseResource) -> Iterator[Warehouse]:
    """The warehouse, disposed of at the end; an unusable URL, schema or DuckDB folder fails
    the step once, naming the setting, without the password."""
    try:
        store = warehouse.open()
    except (ValueError, WarehouseConnectionError) as exc:
        raise setting_failure(str(exc), warehouse) from None
    try:
        yield store
    finally:
        store.dispose()


@contextmanager
def snapshot_reads(warehouse: WarehouseResource) -> Iterator[Warehouse]:
    """The warehouse opened to read the loaded snapshot (as `opened_warehouse`). A lost
    connection is raised again without the URL's password (retried: the warehouse may be
    back soon); a failing read fails the step once, naming the table and the schema."""
    with opened_warehouse(warehouse) as store:
        try:
            yield store
        except WarehouseConnectionError as exc:
            raise WarehouseConnectionError(warehouse.scrub(str(exc))) from None
        except sa.exc.DBAPIError as exc:
            raise setting_failure(
                f"{CONNECTIONS} could not be read from {safe_database_url(warehouse.url)} "
                f"(schema {warehouse.schema_name!r}, {exc.orig.__class__.__name__}); has "
                "sync_connections run?"
            ) from None


def error_line(exc: Exception, *resources: Any) -> str:
    """Why a warehouse call failed, in one line (a sensor's skip reason, a warning): a
    connection error's own message (it names the setting), else the driver's error type and
    the first line of its message; without any secret the resources hold."""
    if isinstance(exc, WarehouseConnectionError):
        text = str(exc)
    else:
        original = getattr(exc, "orig", None) or exc
        first_line = (str(original).strip().splitlines() or [""])[0][:200]
        text = f"{type(original).__name__}: {first_line}"
    return scrub_resources(text, *resources)


def no_snapshot_yet() -> dg.Failure:
    """The step's failure when no sync has loaded a snapshot to read."""
    return setting_failure(
        f"no sync has loaded a snapshot into {CONNECTIONS} yet; run sync_connections first"
    )
