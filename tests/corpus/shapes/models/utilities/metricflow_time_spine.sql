{#- The daily time spine MetricFlow requires (dbt 1.9+: declared with
    `time_spine:` in _utilities__models.yml). -#}
with

days as (

    select cast(day as date) as date_day
    from range(date '2020-01-01', date '2031-01-01', interval 1 day) as t(day)

),

final as (

    select * from days

)

select * from final
