"""The partitions of the pipeline, defined once and imported everywhere.

The Connections page has three tabs, and so the CSV export has three partitions: one per
connection state. The set is fixed by Finch's Dashboard, hence static.
"""

import dagster as dg

from connections_pipeline.concepts import STATES

CONNECTION_STATES: tuple[str, ...] = STATES

connection_state_partitions = dg.StaticPartitionsDefinition(list(CONNECTION_STATES))


def all_states_tags() -> dict[str, str]:
    """Run tags for one run over every state: the partition range `live...disconnected`.

    These are the tags `dagster asset materialize --partition-range` and a single-run
    backfill set; the asset's `BackfillPolicy.single_run()` lets one run cover the range.
    """
    return {
        "dagster/asset_partition_range_start": CONNECTION_STATES[0],
        "dagster/asset_partition_range_end": CONNECTION_STATES[-1],
    }
