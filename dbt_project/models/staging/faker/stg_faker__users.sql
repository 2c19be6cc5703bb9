with

source as (

    select * from {{ source('faker', 'users') }}

),

final as (

    select
        cast(id as {{ dbt.type_int() }}) as customer_id,
        name as first_name,
        title,
        email,
        age,
        gender,
        language,
        nationality,
        occupation,
        academic_degree,
        {{ json_field('address', 'city') }} as city,
        {{ json_field('address', 'state') }} as state,
        {{ json_field('address', 'country_code') }} as country_code,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _airbyte_extracted_at as loaded_at

    from source

)

select * from final
