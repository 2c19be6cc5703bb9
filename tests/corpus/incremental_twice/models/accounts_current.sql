{{ config(materialized='incremental', incremental_strategy='merge', unique_key='account_id') }}

-- Merge: accounts changed since the last build replace their row; new ones are added.
select id as account_id, name, plan, updated_at
from {{ source('crm', 'accounts') }}
{% if is_incremental() %}
where updated_at > (select max(updated_at) from {{ this }})
{% endif %}
