{#- '[' and ']' in the name: Airflow task ids reject them, and dbt's fqn:
    selector reads them as a glob character class, so
    `--select fqn:corpus_packages_and_names.payments.customer_spend_[usd]`
    selects nothing. The bare name (`--select customer_spend_[usd]`) works. -#}
{% set usd_per_eur = 1.10 %}

with

payments as (

    select * from {{ ref('payments') }}

),

final as (

    select
        customer_id,
        count(*) as payments,
        cast(sum(amount_eur) * {{ usd_per_eur }} as decimal(16, 2)) as spend_usd

    from payments
    group by customer_id

)

select * from final
