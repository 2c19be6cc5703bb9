with parent as (
    select * from {{ ref('${parent}') }}
),

events as (
    select * from {{ ref('stg_raw__events') }}
),

running as (
    select
        parent.id,
        parent.grp,
        parent.cnt,
        events.product_id,
        sum(events.quantity * parent.amount / nullif(parent.cnt, 0))
            over (partition by parent.id order by events.occurred_at) as running_amount
    from parent
    inner join events on parent.id = events.customer_id
),

final as (
    select
        id,
        grp,
        max(running_amount) as amount,
        count(distinct product_id % ${modulus}) + cnt as cnt
    from running
    group by id, grp, cnt
)

select * from final
