-- Every live connection's last sync against its refresh cadence (24 h Automated, 168 h
-- Assisted), measured at the newest sync's Finch clock.
with latest as (
    -- the newest snapshot loaded; held and failed runs loaded nothing
    select max(as_of) as as_of from finch_sync_runs where status in ('success', 'partial')
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
    end as freshness
from finch_connections as c
cross join latest as l
where c.state = 'live'
