-- Per provider: live connections, the share that needs action (reauth or an error status)
-- and how many are overdue for a sync.
select
    f.provider_id,
    f.provider_name,
    count(*) as live_connections,
    sum(case when f.connection_status = 'reauth' then 1 else 0 end) as reauth_connections,
    sum(case when f.needs_action then 1 else 0 end) as needs_action_connections,
    sum(case when f.needs_action then 1 else 0 end) * 1.0 / count(*) as needs_action_share,
    sum(case when f.is_overdue then 1 else 0 end) as overdue_syncs
from sync_freshness as f
group by f.provider_id, f.provider_name
