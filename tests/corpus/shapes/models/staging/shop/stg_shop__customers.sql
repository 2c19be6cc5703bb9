with

source as (

    select * from {{ ref('raw_customers') }}

),

renamed as (

    select
        cast(id as integer) as customer_id,
        first_name,
        last_name,
        first_name || ' ' || last_name as customer_name,
        lower(email) as email,
        cast(signed_up_at as timestamp) as signed_up_at

    from source

)

select * from renamed
