with ${ctes},

joined as (
    select
        p0.id,
        (p0.grp + p${last}.grp) % ${groups} as grp,
        ${amount} as amount,
        ${cnt} as cnt
    from p0
${joins}
),

group_totals as (
    select
        grp,
        sum(amount) as group_amount
    from joined
    group by grp
),

final as (
    select
        joined.id,
        joined.grp,
        joined.amount / nullif(group_totals.group_amount, 0) * 1000000 as amount,
        joined.cnt
    from joined
    inner join group_totals on joined.grp = group_totals.grp
)

select * from final
