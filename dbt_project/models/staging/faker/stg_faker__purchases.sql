with

source as (

    select * from {{ source('faker', 'purchases') }}

),

final as (

    select
        cast(id as {{ dbt.type_int() }}) as purchase_id,
        cast(user_id as {{ dbt.type_int() }}) as customer_id,
        cast(product_id as {{ dbt.type_int() }}) as product_id,
        cast(added_to_cart_at as {{ dbt.type_timestamp() }}) as added_to_cart_at,
        cast(purchased_at as {{ dbt.type_timestamp() }}) as purchased_at,
        cast(returned_at as {{ dbt.type_timestamp() }}) as returned_at,
        case
            when returned_at is not null then 'returned'
            when purchased_at is not null then 'purchased'
            else 'in_cart'
        end as purchase_status,
        cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        _airbyte_extracted_at as loaded_at

    from source

)

select * from final
