with

customers as (

    select * from {{ ref('stg_faker__users') }}

),

orders as (

    select * from {{ ref('orders') }}

),

support as (

    select * from {{ ref('int_tickets_aggregated_to_customers') }}

),

order_totals as (

    select
        customer_id,
        count(*) as orders,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        sum(net_revenue) as lifetime_value

    from orders
    group by customer_id

),

final as (

    select
        cast(customers.customer_id as {{ dbt.type_int() }}) as customer_id,
        cast(customers.first_name as {{ dbt.type_string() }}) as first_name,
        cast(customers.email as {{ dbt.type_string() }}) as email,
        cast(customers.country_code as {{ dbt.type_string() }}) as country_code,
        cast(order_totals.first_ordered_at as {{ dbt.type_timestamp() }}) as first_ordered_at,
        cast(order_totals.last_ordered_at as {{ dbt.type_timestamp() }}) as last_ordered_at,
        cast(coalesce(order_totals.orders, 0) as {{ dbt.type_int() }}) as orders,
        {{ money('coalesce(order_totals.lifetime_value, 0)') }} as lifetime_value,
        cast(coalesce(support.support_tickets, 0) as {{ dbt.type_int() }}) as support_tickets,
        cast(coalesce(support.open_support_tickets, 0) as {{ dbt.type_int() }}) as open_support_tickets,
        cast(support.avg_satisfaction_score as {{ dbt.type_float() }}) as avg_satisfaction_score,
        cast(
            case
                when coalesce(order_totals.orders, 0) = 0 then 'prospect'
                when coalesce(support.open_support_tickets, 0) > 0 then 'needs_attention'
                when order_totals.orders > 1 then 'repeat'
                else 'new'
            end as {{ dbt.type_string() }}
        ) as customer_segment

    from customers
    left join order_totals
        on customers.customer_id = order_totals.customer_id
    left join support
        on customers.customer_id = support.customer_id

)

select * from final
