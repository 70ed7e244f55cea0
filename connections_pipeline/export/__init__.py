"""CSV exports of the Connections page: pure logic, no Dagster.

`table` selects, sorts, formats and neutralises rows and encodes RFC 4180 CSV; `destination`
writes files atomically to a local folder or an fsspec URL; `run` ties them together for
one connection state.
"""

from connections_pipeline.export.columns import (
    DASHBOARD_COLUMNS,
    ISO_8601_UTC,
    SORT_KEYS,
    dated_file_name,
    latest_file_name,
)
from connections_pipeline.export.destination import Destination, parse_storage_options
from connections_pipeline.export.errors import (
    OPTIONS_SETTING,
    URL_SETTING,
    ExportSettingError,
    ExportWriteError,
)
from connections_pipeline.export.options import ColumnFilter, ExportOptions, check_options
from connections_pipeline.export.run import StateExport, export_state
from connections_pipeline.export.table import (
    FORMULA_STARTS,
    NEUTRALISING_PREFIX,
    encode_csv,
    neutralise,
    restore,
    select_rows,
)

__all__ = [
    "DASHBOARD_COLUMNS",
    "FORMULA_STARTS",
    "ISO_8601_UTC",
    "NEUTRALISING_PREFIX",
    "OPTIONS_SETTING",
    "SORT_KEYS",
    "URL_SETTING",
    "ColumnFilter",
    "Destination",
    "ExportOptions",
    "ExportSettingError",
    "ExportWriteError",
    "StateExport",
    "check_options",
    "dated_file_name",
    "encode_csv",
    "export_state",
    "latest_file_name",
    "neutralise",
    "parse_storage_options",
    "restore",
    "select_rows",
]
