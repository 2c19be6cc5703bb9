with

source as (

    select * from {{ source('support', 'tickets') }}

),

final as (

    select
        cast(ticket_id as {{ dbt.type_int() }}) as ticket_id,
        cast(user_id as {{ dbt.type_int() }}) as customer_id,
        lower(status) as status,
        lower(priority) as priority,
        lower(channel) as channel,
        {{ dbt.safe_cast("nullif(satisfaction_score, '')", dbt.type_int()) }} as satisfaction_score,
        cast(nullif(opened_at, '') as {{ dbt.type_timestamp() }}) as opened_at,
        cast(nullif(first_response_at, '') as {{ dbt.type_timestamp() }}) as first_response_at,
        cast(nullif(resolved_at, '') as {{ dbt.type_timestamp() }}) as resolved_at,
        cast(nullif(updated_at, '') as {{ dbt.type_timestamp() }}) as updated_at,
        _airbyte_extracted_at as loaded_at

    from source

)

select * from final
