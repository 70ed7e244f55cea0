"""The Dagster pools of the pipeline, named once and imported by every step that needs one.

Finch limits requests per IP address (1,000 per 5 minutes; past that it blocks the IP for an
hour), and a step paces only the requests it sends itself. Every asset and op that calls
Finch therefore runs in `FINCH_POOL`, whose limit is 1 (the instance's `concurrency: pools:
default_limit: 1`, see `examples/dagster.yaml`): two runs never pace against the same IP
independently, whether the daemon, the UI or `dagster job execute` started them.
"""

FINCH_POOL = "finch_api"
