-- Live connections that need the employer to act (reauth, error statuses), with how long
-- they have been in their current state: since the current history version began.
with latest as (
    -- the newest snapshot loaded; held and failed runs loaded nothing
    select max(as_of) as as_of from finch_sync_runs where status in ('success', 'partial')
)
select
    c.connection_id,
    c.company_name,
    c.customer_id,
    c.customer_name,
    c.customer_email,
    c.provider_name,
    c.connection_status,
    h.valid_from as status_since,
    cast(floor(extract(epoch from (l.as_of - h.valid_from)) / 86400) as integer)
        as days_in_status,
    c.last_error
from finch_connections as c
join finch_connections_history as h
    on h.connection_key = c.connection_key and h.is_current
cross join latest as l
where c.state = 'live' and c.needs_action
