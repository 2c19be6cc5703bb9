with

source as (

    select * from {{ ref('raw_products') }}

),

renamed as (

    select
        id as product_id,
        sku,
        name as product_name,
        category,
        price,
        launched_on

    from source

)

select * from renamed
