with

orders as (

    select * from {{ ref('orders') }}

),

final as (

    select
        cast(ordered_at as date) as order_date,
        count(*) as orders,
        sum(case when is_fulfilled then amount else 0 end) as fulfilled_revenue,
        sum(amount) as gross_revenue

    from orders
    group by 1

)

select * from final
