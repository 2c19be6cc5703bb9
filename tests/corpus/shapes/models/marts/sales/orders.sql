{#- Shares its name with the source table app.orders (source('app', 'orders')):
    a deliberate name collision between a model and a source table. -#}
with

orders as (

    select * from {{ ref('int_orders_joined_to_products') }}

),

final as (

    select
        cast(order_id as integer) as order_id,
        cast(customer_id as integer) as customer_id,
        cast(product_id as integer) as product_id,
        cast(product_name as varchar) as product_name,
        cast(category as varchar) as category,
        cast(quantity as integer) as quantity,
        cast(status as varchar) as status,
        cast(amount as decimal(16, 2)) as amount,
        cast(status in ('completed', 'shipped') as boolean) as is_fulfilled,
        cast(ordered_at as timestamp) as ordered_at

    from orders

)

select * from final
