-- Singular test reading two models: the per-customer order count in customers
-- (latest version) matches the orders mart.
with

customers as (

    select * from {{ ref('customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

order_counts as (

    select
        customer_id,
        count(*) as orders

    from orders
    group by customer_id

)

select
    customers.customer_id,
    customers.orders as customer_orders,
    coalesce(order_counts.orders, 0) as orders_in_mart

from customers
left join order_counts
    on customers.customer_id = order_counts.customer_id
where customers.orders != coalesce(order_counts.orders, 0)
