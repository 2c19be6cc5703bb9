{#- Named like the folder next to it (models/payments/): its fqn
    corpus_packages_and_names.payments is a prefix of every model's fqn in that
    folder, so `--select fqn:corpus_packages_and_names.payments` selects all
    of them, not just this model. -#}
with

payments as (

    select * from {{ ref('stg_shop__payments') }}

),

calendar as (

    select * from {{ ref('calendar') }}

),

final as (

    select
        payments.payment_id,
        payments.customer_id,
        payments.paid_on,
        payments.payment_method,
        payments.amount_eur,
        calendar.is_weekend as paid_on_weekend

    from payments
    left join calendar
        on payments.paid_on = calendar.date_day

)

select * from final
