with

source as (

    select * from {{ source('app', 'orders') }}

),

renamed as (

    select
        cast(id as integer) as order_id,
        cast(customer_id as integer) as customer_id,
        cast(product_id as integer) as product_id,
        quantity,
        status,
        {{ cents_to_dollars('amount_cents') }} as amount,
        cast(ordered_at as timestamp) as ordered_at,
        cast(updated_at as timestamp) as updated_at

    from source

)

select * from renamed
