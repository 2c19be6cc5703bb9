{#- Same name as the root project's model `calendar`: the root project puts
    this one in schema `helpers` (see the root dbt_project.yml). -#}
with

days as (

    {{ dbt.date_spine('day', "cast('2018-01-01' as date)", "cast('2019-01-01' as date)") }}

),

final as (

    select
        cast(date_day as date) as date_day,
        cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start

    from days

)

select * from final
