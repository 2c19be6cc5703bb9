with

source as (

    select * from {{ source('app', 'events') }}

),

renamed as (

    select
        cast(id as integer) as event_id,
        cast(customer_id as integer) as customer_id,
        event_type,
        cast(occurred_at as timestamp) as occurred_at,
        cast(loaded_at as timestamp) as loaded_at

    from source

)

select * from renamed
