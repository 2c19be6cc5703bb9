{{ config(
    post_hook="copy (select * from {{ this }} order by customer_id) to '../exports/customer_orders.csv' (header, delimiter ',')"
) }}

select
    profiles.customer_id,
    profiles.full_name,
    profiles.email_domain,
    coalesce(totals.order_count, 0) as order_count,
    coalesce(totals.total_amount, 0) as total_amount,
    paid.amount_paid
from {{ ref('customer_profiles') }} as profiles
left join {{ ref('order_totals') }} as totals using (customer_id)
left join {{ ref('paid_by_customer') }} as paid using (customer_id)
