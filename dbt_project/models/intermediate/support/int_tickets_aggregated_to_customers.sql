with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

final as (

    select
        customer_id,
        count(*) as support_tickets,
        sum(case when status in ('open', 'pending') then 1 else 0 end) as open_support_tickets,
        avg(satisfaction_score) as avg_satisfaction_score,
        max(opened_at) as last_ticket_opened_at

    from tickets
    group by customer_id

)

select * from final
