-- The Connect-session funnel per session kind: created, completed, expired, still pending,
-- and the time from creating the link to the employer's connection. An attempt whose
-- outcome is unknown (status 'unknown': Finch may or may not have created the link, its
-- answer was lost) is not a created session: it is counted in attempts_unknown only.
select
    coalesce(s.kind, 'connect') as kind,
    sum(case when s.status is distinct from 'unknown' then 1 else 0 end) as sessions_created,
    sum(case when s.status = 'completed' then 1 else 0 end) as sessions_completed,
    sum(case when s.status = 'expired' then 1 else 0 end) as sessions_expired,
    sum(case when s.status not in ('completed', 'expired', 'unknown') then 1 else 0 end)
        as sessions_pending,
    sum(case when s.status = 'unknown' then 1 else 0 end) as attempts_unknown,
    sum(case when s.status = 'completed' then 1 else 0 end) * 1.0
        / nullif(sum(case when s.status is distinct from 'unknown' then 1 else 0 end), 0)
        as completion_rate,
    avg(s.time_to_connect_seconds) / 3600.0 as avg_hours_to_connect,
    percentile_cont(0.5) within group (order by s.time_to_connect_seconds) / 3600.0
        as median_hours_to_connect
from finch_connect_sessions as s
group by coalesce(s.kind, 'connect')
