with events as (
    select * from {{ ref('stg_raw__events') }}
    where product_id % ${modulus} = ${remainder}
),

products as (
    select * from {{ ref('stg_raw__products') }}
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

final as (
    select
        customers.customer_id as id,
        hash(customers.region) % 16 as grp,
        coalesce(sum(events.quantity * products.price), 0) as amount,
        count(events.event_id) as cnt
    from customers
    left join events on customers.customer_id = events.customer_id
    left join products on events.product_id = products.product_id
    group by customers.customer_id, customers.region
)

select * from final
