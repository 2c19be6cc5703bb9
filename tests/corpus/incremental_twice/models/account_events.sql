{{ config(materialized='incremental', incremental_strategy='append') }}

-- Append: only events newer than the newest already here.
select id as event_id, account_id, kind, happened_at
from {{ source('crm', 'events') }}
{% if is_incremental() %}
where happened_at > (select max(happened_at) from {{ this }})
{% endif %}
