with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

order_totals as (

    select
        customer_id,
        count(*) as orders,
        sum(amount) as lifetime_value

    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.customer_name,
        customers.email,
        coalesce(order_totals.orders, 0) as orders,
        coalesce(order_totals.lifetime_value, 0) as lifetime_value

    from customers
    left join order_totals
        on customers.customer_id = order_totals.customer_id

)

select * from final
