"""Finch Connect links from Dagster: the `create_connect_link` job (Launchpad config) and
the opt-in re-auth queue asset, which creates reauthentication links."""

import dagster as dg

from connections_pipeline.assets.failures import opened_warehouse, setting_failure
from connections_pipeline.assets.table_schemas import (
    COLUMN_SCHEMA,
    ROW_COUNT,
    ROWS_CHANGED,
    column_schema,
)
from connections_pipeline.connect_links import (
    ConnectLinkError,
    ConnectLinkRequest,
    create_connect_link,
    create_reauth_links,
)
from connections_pipeline.connect_links.request import DEFAULT_REAUTH_MINUTES
from connections_pipeline.export import ISO_8601_UTC, encode_csv
from connections_pipeline.export.table import cell_text, markdown_preview, neutralise
from connections_pipeline.finch import FinchConfigError
from connections_pipeline.pools import FINCH_POOL
from connections_pipeline.resources import (
    ExportDestinationResource,
    FinchResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import (
    CONNECT_SESSIONS,
    CONNECTIONS,
    CONNECTIONS_HISTORY,
    WarehouseConnectionError,
)
from connections_pipeline.warehouse.columns import REAUTH_QUEUE_TABLE_COLUMNS

CONNECT_LINK_JOB_NAME = "create_connect_link"
REAUTH_JOB_NAME = "reauthenticate_connections"
REAUTH_GROUP = "finch_reauth"
REAUTH_QUEUE_CSV = "reauth_queue.csv"
LINK_ERRORS = (ConnectLinkError, FinchConfigError, WarehouseConnectionError)


class ConnectLinkConfig(dg.Config):
    """The fields of Finch's `POST /connect/sessions`; see the README's Connect links."""

    customer_id: str
    customer_name: str
    products: list[str]
    redirect_uri: str
    customer_email: str | None = None
    minutes_to_expire: int | None = None
    provider: str | None = None
    auth_method: str | None = None
    manual: bool | None = None
    sandbox: str | None = None
    force: bool = False

    def to_request(self, created_by: str) -> ConnectLinkRequest:
        return ConnectLinkRequest.from_fields(self.model_dump(), created_by=created_by)


@dg.op(name="create_connect_session", tags={"kind": "finch"}, pool=FINCH_POOL)
def create_connect_session_op(
    context: dg.OpExecutionContext,
    config: ConnectLinkConfig,
    finch: FinchResource,
    warehouse: WarehouseResource,
) -> str:
    """Validate, create the session at Finch, record it in `finch_connect_sessions`.

    Fails, naming the reason, when nothing was created, and also when the outcome is unknown
    (Finch may have created the link; the attempt is in the ledger with status `unknown`).
    """
    request = config.to_request(created_by=f"dagster:{context.run.run_id}")
    with opened_warehouse(warehouse) as store:
        try:
            link = create_connect_link(request, finch, store)
        except LINK_ERRORS as exc:
            raise setting_failure(str(exc), finch, warehouse) from None
    context.log.info(f"Connect URL for {request.customer_id}: {link.connect_url}")
    context.add_output_metadata(
        {
            "session_id": link.session_id,
            "connect_url": dg.MetadataValue.url(link.connect_url),
            "customer_id": request.customer_id,
            "expires_at": link.expires_at.isoformat(),
        }
    )
    return link.connect_url


@dg.job(
    name=CONNECT_LINK_JOB_NAME,
    description="Create a Finch Connect link for one employer and record it in the ledger.",
)
def create_connect_link_job() -> None:
    create_connect_session_op()


class ReauthConfig(dg.Config):
    minutes_to_expire: int = DEFAULT_REAUTH_MINUTES
    redirect_uri: str | None = None


@dg.asset(
    name="finch_reauth_queue",
    group_name=REAUTH_GROUP,
    kinds={"python"},
    deps=[CONNECTIONS, CONNECTIONS_HISTORY, CONNECT_SESSIONS],
    pool=FINCH_POOL,
    metadata={COLUMN_SCHEMA: column_schema(REAUTH_QUEUE_TABLE_COLUMNS)},
    description="Live connections in reauth, each with one open reauthentication link, "
    "days in reauth and the customer to contact; also written as `reauth_queue.csv`.",
)
def finch_reauth_queue(
    context: dg.AssetExecutionContext,
    config: ReauthConfig,
    finch: FinchResource,
    warehouse: WarehouseResource,
    export_destination: ExportDestinationResource,
) -> dg.MaterializeResult:
    with opened_warehouse(warehouse) as store:
        try:
            outcome = create_reauth_links(
                finch,
                store,
                minutes_to_expire=config.minutes_to_expire,
                redirect_uri=config.redirect_uri,
                created_by=f"dagster:{context.run.run_id}",
            )
        except LINK_ERRORS as exc:
            raise setting_failure(str(exc), finch, warehouse) from None
    for failure in outcome.failed:
        context.log.warning(f"Reauthentication link not created: {failure}")
    for unknown in outcome.unknown:
        context.log.warning(f"Reauthentication link of unknown outcome (not retried): {unknown}")
    queue = outcome.queue
    header = list(queue.columns)
    rows = [
        [neutralise(cell_text(value, ISO_8601_UTC)) for value in row] for row in queue.iter_rows()
    ]
    destination = export_destination.open()
    destination.check()
    location = destination.write(REAUTH_QUEUE_CSV, encode_csv(header, rows))
    context.log.info(
        f"Re-auth queue: {queue.height} connection(s), {len(outcome.created)} new link(s), "
        f"{len(outcome.failed)} failed, {len(outcome.unknown)} of unknown outcome; CSV at "
        f"{location}"
    )
    return dg.MaterializeResult(
        metadata={
            # The table is replaced whole: its rows are this run's.
            ROW_COUNT: queue.height,
            ROWS_CHANGED: queue.height,
            "links_created": len(outcome.created),
            "links_failed": len(outcome.failed),
            "links_unknown": len(outcome.unknown),
            "csv": location,
            "preview": dg.MetadataValue.md(markdown_preview(header, rows[:10])),
        }
    )


reauth_job = dg.define_asset_job(
    REAUTH_JOB_NAME,
    selection=dg.AssetSelection.assets(finch_reauth_queue),
    description="Opt-in: create reauthentication links and publish the re-auth queue.",
)
