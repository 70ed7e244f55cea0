"""One sync in a process of its own, for the crash tests to SIGKILL.

    python crash_worker.py BASE_URL WAREHOUSE_URL SCHEMA RUN_ID [KILL_AT_STATEMENT]

(the driver's connect args JSON, for Snowflake, from CONNECTIONS_WAREHOUSE_CONNECT_ARGS)

The tests call `main` in a process forked from a server that imported this module once
(crash_helpers.py): the same sync in a process of its own, without paying the pipeline's
imports again for each of the dozens of kills.

With KILL_AT_STATEMENT the process sends itself SIGKILL just before its Nth SQL statement or
commit (counted over everything the sync sends, reads included), the way a node dying
mid-load would stop it. Without it the sync runs to the end and prints
"statements <n> load_from <m>": how many statements a whole run sends and how many came
before its writes, the range the tests draw kill points from.

Only statements sent through SQLAlchemy are counted: on Snowflake the bulk path's PUT and
COPY INTO (and the session setup before a transaction) run on the raw driver cursor, which
`before_cursor_execute` does not see. A kill then lands between SQLAlchemy statements, still
inside the load; the kill points and the whole run's count are counted the same way.
"""

import os
import signal
import sys
from typing import Any

import sqlalchemy as sa

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.warehouse import Warehouse

TIME_SCALE = 0.01
CONNECT_ARGS_ENV = "CONNECTIONS_WAREHOUSE_CONNECT_ARGS"


def main(
    base_url: str,
    url: str,
    schema: str,
    run_id: str,
    kill_at: int | None,
    connect_args: str | None = None,
) -> str:
    """Run the sync; "statements <n> load_from <m>" when it ran to the end."""
    sent = 0

    def count(*_: Any) -> None:
        nonlocal sent
        sent += 1
        if kill_at is not None and sent >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    load_from = 0

    def extraction_progress(*_: Any) -> None:
        nonlocal load_from
        load_from = sent  # after the last report, only the writes of the run are left

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    # A commit is a kill point too: killed just before it, the transaction never lands.
    sa.event.listen(sa.engine.Engine, "commit", count)
    finch = FinchResource(
        base_url=base_url, time_scale=TIME_SCALE, timeout_seconds=5.0, max_attempts=4
    )
    with Warehouse(url, schema=schema, connect_args=connect_args) as warehouse:
        sync_with_resources(
            run_id,
            finch,
            TokenSourceResource(kind="sandbox"),
            warehouse,
            progress=extraction_progress,
        )
    return f"statements {sent} load_from {load_from}"


if __name__ == "__main__":
    arguments = sys.argv[1:]
    kill_at = int(arguments[4]) if len(arguments) > 4 else None
    print(main(*arguments[:4], kill_at=kill_at, connect_args=os.environ.get(CONNECT_ARGS_ENV)))
