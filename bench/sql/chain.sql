with parent as (
    select * from {{ ref('${parent}') }}
),

windowed as (
    select
        id,
        grp,
        avg(amount) over (partition by grp order by id rows between ${width} preceding and current row) as amount,
        sum(cnt) over (partition by grp order by id rows between ${width} preceding and current row) as cnt,
        rank() over (partition by grp order by amount desc) as amount_rank
    from parent
),

final as (
    select
        id,
        grp,
        amount * (1 + amount_rank / 100000.0) as amount,
        cnt
    from windowed
)

select * from final
