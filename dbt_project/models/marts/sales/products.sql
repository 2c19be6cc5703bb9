with

products as (

    select * from {{ ref('stg_faker__products') }}

),

purchases as (

    select * from {{ ref('int_purchases_joined_to_products') }}

),

sales as (

    select
        product_id,
        sum(case when purchase_status = 'purchased' then 1 else 0 end) as units_sold,
        sum(case when purchase_status = 'returned' then 1 else 0 end) as units_returned,
        sum(net_revenue) as net_revenue

    from purchases
    group by product_id

),

final as (

    select
        cast(products.product_id as {{ dbt.type_int() }}) as product_id,
        cast(products.product_name as {{ dbt.type_string() }}) as product_name,
        cast(products.model_year as {{ dbt.type_int() }}) as model_year,
        {{ money('products.price') }} as price,
        cast(coalesce(sales.units_sold, 0) as {{ dbt.type_int() }}) as units_sold,
        cast(coalesce(sales.units_returned, 0) as {{ dbt.type_int() }}) as units_returned,
        {{ money('coalesce(sales.net_revenue, 0)') }} as net_revenue

    from products
    left join sales
        on products.product_id = sales.product_id

)

select * from final
