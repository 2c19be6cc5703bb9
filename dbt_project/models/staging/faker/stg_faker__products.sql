with

source as (

    select * from {{ source('faker', 'products') }}

),

final as (

    select
        cast(id as {{ dbt.type_int() }}) as product_id,
        make,
        model,
        {{ dbt.concat(["make", "' '", "model"]) }} as product_name,
        cast(year as {{ dbt.type_int() }}) as model_year,
        {{ money('price') }} as price,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _airbyte_extracted_at as loaded_at

    from source

)

select * from final
