with

orders as (

    select * from {{ ref('stg_app__orders') }}

),

products as (

    select * from {{ ref('stg_shop__products') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.product_id,
        products.product_name,
        products.category,
        orders.quantity,
        orders.status,
        orders.amount,
        orders.ordered_at

    from orders
    left join products
        on orders.product_id = products.product_id

)

select * from final
