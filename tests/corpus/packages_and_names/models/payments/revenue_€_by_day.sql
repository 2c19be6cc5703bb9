{#- Non-ASCII '€' in the name: dbt accepts it, Airflow task ids do not. -#}
with

calendar as (

    select * from {{ ref('calendar') }}

),

payments as (

    select * from {{ ref('payments') }}

),

daily as (

    select
        paid_on,
        count(*) as payments,
        sum(amount_eur) as revenue_eur

    from payments
    group by paid_on

),

final as (

    select
        calendar.date_day,
        calendar.is_weekend,
        coalesce(daily.payments, 0) as payments,
        coalesce(daily.revenue_eur, 0) as revenue_eur

    from calendar
    left join daily
        on calendar.date_day = daily.paid_on

)

select * from final
