{{ config(alias='product_performance') }}

with

products as (

    select * from {{ ref('stg_shop__products') }}

),

orders as (

    select * from {{ ref('int_orders_joined_to_products') }}

),

order_totals as (

    select
        product_id,
        count(*) as orders,
        sum(quantity) as units_sold,
        sum(amount) as revenue

    from orders
    group by product_id

),

final as (

    select
        products.product_id,
        products.product_name,
        products.category,
        coalesce(order_totals.orders, 0) as orders,
        coalesce(order_totals.units_sold, 0) as units_sold,
        coalesce(order_totals.revenue, 0) as revenue

    from products
    left join order_totals
        on products.product_id = order_totals.product_id

)

select * from final
