{#- Same name as the vendored package's model `calendar`, which it builds on:
    ref('calendar') here would resolve to this model, so the package's is
    referenced with the two-argument ref. -#}
with

package_calendar as (

    select * from {{ ref('corpus_helpers', 'calendar') }}

),

final as (

    select
        date_day,
        month_start,
        extract(dow from date_day) in (0, 6) as is_weekend

    from package_calendar

)

select * from final
