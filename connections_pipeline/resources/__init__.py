"""Dagster resources: configuration and connections, handed to assets."""

from connections_pipeline.resources.export_destination import ExportDestinationResource
from connections_pipeline.resources.finch_api import FinchResource
from connections_pipeline.resources.notifier import NotifierResource
from connections_pipeline.resources.sync_guard import SyncGuardResource
from connections_pipeline.resources.token_source_resource import TokenSourceResource
from connections_pipeline.resources.warehouse_resource import WarehouseResource

__all__ = [
    "ExportDestinationResource",
    "FinchResource",
    "NotifierResource",
    "SyncGuardResource",
    "TokenSourceResource",
    "WarehouseResource",
]
