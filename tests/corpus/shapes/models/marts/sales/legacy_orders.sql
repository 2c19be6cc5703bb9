{#- Disabled: kept to check that disabled nodes never reach the DAG. It refers
    to a relation that does not exist, so it would fail if it ever ran. -#}
{{ config(enabled=false) }}

select * from {{ source('app', 'orders_archive_2019') }}
