with

tickets as (

    select * from {{ ref('stg_support__tickets') }}

),

final as (

    select
        cast(ticket_id as {{ dbt.type_int() }}) as ticket_id,
        cast(customer_id as {{ dbt.type_int() }}) as customer_id,
        cast(status as {{ dbt.type_string() }}) as status,
        cast(priority as {{ dbt.type_string() }}) as priority,
        cast(channel as {{ dbt.type_string() }}) as channel,
        cast(opened_at as {{ dbt.type_timestamp() }}) as opened_at,
        cast(first_response_at as {{ dbt.type_timestamp() }}) as first_response_at,
        cast(resolved_at as {{ dbt.type_timestamp() }}) as resolved_at,
        cast(
            {{ dbt.datediff('opened_at', 'first_response_at', 'minute') }}
            as {{ dbt.type_int() }}
        ) as first_response_minutes,
        cast(
            {{ dbt.datediff('opened_at', 'resolved_at', 'hour') }}
            as {{ dbt.type_int() }}
        ) as resolution_hours,
        cast(satisfaction_score as {{ dbt.type_int() }}) as satisfaction_score,
        cast(resolved_at is not null as {{ dbt.type_boolean() }}) as is_resolved

    from tickets

)

select * from final
