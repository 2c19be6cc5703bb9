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
    where updated_at > (select max(updated_at) from {{ this }})
    {% endif %}

),

final as (

    select
        cast(purchase_id as {{ dbt.type_int() }}) as order_id,
        cast(user_id as {{ dbt.type_int() }}) as user_id,
        cast(product_id as {{ dbt.type_int() }}) as product_id,
        cast(product_name as {{ dbt.type_string() }}) as product_name,
        cast(purchase_status as {{ dbt.type_string() }}) as order_status,
        cast(purchased_at as {{ dbt.type_timestamp() }}) as ordered_at,
        cast(returned_at as {{ dbt.type_timestamp() }}) as returned_at,
        cast(net_revenue as numeric) as net_revenue,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at

    from purchases
    where purchase_status != 'in_cart'

)

select * from final
