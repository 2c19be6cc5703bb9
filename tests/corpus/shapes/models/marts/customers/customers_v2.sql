with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

events as (

    select * from {{ ref('stg_app__events') }}

),

order_totals as (

    select
        customer_id,
        count(*) as orders,
        min(ordered_at) as first_ordered_at,
        sum(amount) as lifetime_value

    from orders
    group by customer_id

),

event_totals as (

    select
        customer_id,
        count(*) as events

    from events
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.first_name,
        customers.last_name,
        customers.email,
        order_totals.first_ordered_at,
        coalesce(order_totals.orders, 0) as orders,
        coalesce(order_totals.lifetime_value, 0) as lifetime_value,
        coalesce(event_totals.events, 0) as events

    from customers
    left join order_totals
        on customers.customer_id = order_totals.customer_id
    left join event_totals
        on customers.customer_id = event_totals.customer_id

)

select * from final
