-- Ad-hoc analysis: compiled by dbt, never run.
with

orders as (

    select * from {{ ref('orders') }}

),

final as (

    select
        status,
        count(*) as orders,
        sum(amount) as revenue

    from orders
    group by status

)

select * from final
order by revenue desc
