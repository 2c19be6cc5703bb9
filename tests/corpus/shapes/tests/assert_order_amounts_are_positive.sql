-- Singular test on one model: every order has a positive amount.
select
    order_id,
    amount

from {{ ref('orders') }}
where amount <= 0
