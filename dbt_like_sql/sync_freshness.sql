-- Every live connection's last sync against its refresh cadence (24 h Automated, 168 h
-- Assisted), measured at the newest sync's Finch clock; and how long ago this pipeline last
-- observed it (a run with a request budget or deadline defers some connections), with the
-- newest run's coverage: tokens it deferred and those never observed yet.
with latest as (
    -- the newest snapshot loaded; held and failed runs loaded nothing
    select max(as_of) as as_of from finch_sync_runs where status in ('success', 'partial')
),
latest_run as (
    select r.tokens_deferred, r.tokens_never_observed, r.company_names_pending
    from finch_sync_runs as r
    join latest as l on r.as_of = l.as_of
    where r.status in ('success', 'partial')
)
select
    c.connection_id,
    c.company_name,
    c.provider_id,
    c.provider_name,
    c.connection_type,
    c.connection_status,
    c.needs_action,
    c.expected_refresh_hours,
    c.last_synced_at,
    coalesce(c.last_synced_at, c.connected_at) as synced_or_connected_at,
    l.as_of as measured_at,
    extract(epoch from (l.as_of - coalesce(c.last_synced_at, c.connected_at))) / 3600.0
        as hours_since_sync,
    extract(epoch from (l.as_of - coalesce(c.last_synced_at, c.connected_at)))
        > c.expected_refresh_hours * 3600 as is_overdue,
    case
        when c.last_synced_at is null then 'never_synced'
        when extract(epoch from (l.as_of - c.last_synced_at)) > c.expected_refresh_hours * 3600
            then 'overdue'
        else 'fresh'
    end as freshness,
    c.last_seen_at as last_observed_at,
    extract(epoch from (l.as_of - c.last_seen_at)) / 3600.0 as hours_since_observed,
    c.company_name_pending,
    -- a connection the token source no longer lists is observed by no run any more
    c.left_source_at,
    (select max(tokens_deferred) from latest_run) as run_tokens_deferred,
    (select max(tokens_never_observed) from latest_run) as run_tokens_never_observed
from finch_connections as c
cross join latest as l
where c.state = 'live'
