"""Where the CSV exports go, as a Dagster resource; the writing lives in `export/`."""

from collections.abc import Mapping

import dagster as dg

from connections_pipeline.export import Destination, parse_storage_options
from connections_pipeline.redaction import redact_url
from connections_pipeline.resources.redacted_fields import MASK, RedactedFields

DEFAULT_EXPORT_URL = "./data/exports"


class ExportDestinationResource(RedactedFields, dg.ConfigurableResource):
    """A local folder (default `./data/exports`, relative to the run's working directory) or
    any fsspec URL such as `s3://bucket/prefix` (CONNECTIONS_EXPORT_URL).

    `storage_options` is a JSON object of fsspec filesystem arguments
    (CONNECTIONS_EXPORT_STORAGE_OPTIONS), e.g. `{"endpoint_url": "http://127.0.0.1:9000"}`;
    it may hold credentials, so neither it nor a password in the URL is ever shown.
    """

    url: str = DEFAULT_EXPORT_URL
    storage_options: str | None = None

    def _shown(self) -> Mapping[str, str]:
        return {
            "url": repr(redact_url(self.url)),
            "storage_options": MASK if self.storage_options else "None",
        }

    def open(self) -> Destination:
        """The destination; raises ExportSettingError naming an unusable setting."""
        return Destination(self.url, parse_storage_options(self.storage_options))
