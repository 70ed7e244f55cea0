-- The Connect-session funnel per session kind: created, completed, expired, still pending,
-- and the time from creating the link to the employer's connection.
select
    coalesce(s.kind, 'connect') as kind,
    count(*) as sessions_created,
    sum(case when s.status = 'completed' then 1 else 0 end) as sessions_completed,
    sum(case when s.status = 'expired' then 1 else 0 end) as sessions_expired,
    sum(case when s.status not in ('completed', 'expired') then 1 else 0 end)
        as sessions_pending,
    sum(case when s.status = 'completed' then 1 else 0 end) * 1.0 / count(*) as completion_rate,
    avg(s.time_to_connect_seconds) / 3600.0 as avg_hours_to_connect,
    percentile_cont(0.5) within group (order by s.time_to_connect_seconds) / 3600.0
        as median_hours_to_connect
from finch_connect_sessions as s
group by coalesce(s.kind, 'connect')
