-- How many connections were in each state at the end of each day a sync ran, rebuilt from
-- the SCD2 history (the last sync of a day stands for that day).
with days as (
    select
        cast(as_of at time zone 'UTC' as date) as day,
        max(as_of) as as_of
    from finch_sync_runs
    where status in ('success', 'partial')  -- held and failed runs loaded nothing
    group by cast(as_of at time zone 'UTC' as date)
)
select
    d.day,
    h.state,
    count(*) as connections
from days as d
join finch_connections_history as h
    on h.valid_from <= d.as_of
    and (h.valid_to is null or h.valid_to > d.as_of)
group by d.day, h.state
