with

source as (

    select * from {{ ref('raw_payments') }}

),

renamed as (

    select
        id as payment_id,
        customer_id,
        cast(paid_on as date) as paid_on,
        payment_method,
        {{ corpus_helpers.from_cents('amount_cents') }} as amount_eur

    from source

)

select * from renamed
