{#- Hyphen in the name: valid for dbt and for Airflow task ids, but not a
    bare SQL identifier (the relation must be quoted). -#}
with

payments as (

    select * from {{ ref('payments') }}

),

final as (

    select
        payment_method,
        count(*) as payments,
        sum(amount_eur) as amount_eur

    from payments
    group by payment_method

)

select * from final
