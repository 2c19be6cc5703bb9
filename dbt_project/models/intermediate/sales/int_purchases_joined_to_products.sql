with

purchases as (

    select * from {{ ref('stg_faker__purchases') }}

),

products as (

    select * from {{ ref('stg_faker__products') }}

),

final as (

    select
        purchases.purchase_id,
        purchases.customer_id,
        purchases.product_id,
        products.product_name,
        purchases.purchase_status,
        purchases.added_to_cart_at,
        purchases.purchased_at,
        purchases.returned_at,
        products.price,
        case
            when purchases.purchase_status = 'purchased' then products.price
            else {{ money('0') }}
        end as net_revenue,
        purchases.updated_at

    from purchases
    inner join products
        on purchases.product_id = products.product_id

)

select * from final
