{{
    config(
        materialized='incremental',
        unique_key='order_id',
        on_schema_change='append_new_columns'
    )
}}

with

purchases as (

    select * from {{ ref('int_purchases_joined_to_products') }}

    {% if is_incremental() %}
    -- >= re-reads the rows at the high-water mark, so one that lands late with the same
    -- updated_at is not lost; unique_key replaces the re-read rows instead of duplicating them.
    -- coalesce: an empty table has no mark, so everything loads. A null updated_at is taken on
    -- every run, as a full refresh would take it, so not_null_orders_updated_at reports it.
    where
        updated_at >= coalesce(
            (select max(updated_at) from {{ this }}),
            cast('1900-01-01' as {{ dbt.type_timestamp() }})
        )
        or updated_at is null
    {% endif %}

),

final as (

    select
        cast(purchase_id as {{ dbt.type_int() }}) as order_id,
        cast(customer_id as {{ dbt.type_int() }}) as customer_id,
        cast(product_id as {{ dbt.type_int() }}) as product_id,
        cast(product_name as {{ dbt.type_string() }}) as product_name,
        cast(purchase_status as {{ dbt.type_string() }}) as order_status,
        cast(purchased_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(returned_at as {{ dbt.type_timestamp() }}) as returned_at,
        {{ money('net_revenue') }} as net_revenue,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from purchases
    where purchase_status != 'in_cart'

)

select * from final
