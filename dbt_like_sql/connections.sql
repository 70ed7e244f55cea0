-- The Connections page with the Dashboard's column names: one row per connection and per
-- staged Connect session. "Left Token Source" is set when the application stopped listing
-- any token of the connection: the row is still shown (nothing proves it disconnected) but
-- no longer refreshed (`stale`, with `last_error` saying why).
select
    c.connection_key,
    c.state,
    c.company_name as "Company Name",
    c.company_id as "Company ID",
    c.connection_id as "Connection ID",
    c.customer_name as "Customer Name",
    c.customer_id as "Customer ID",
    c.entity_count as "# Entities",
    c.connection_status_label as "Connection Status",
    c.connection_status,
    c.last_synced_at as "Last Synced",
    c.connection_type as "Connection Type",
    c.connected_at as "Connected",
    c.provider_name as "Provider",
    c.left_source_at as "Left Token Source",
    c.stale,
    c.last_error,
    c.needs_action
from finch_connections as c
