select
    id as payment_id,
    order_id,
    method,
    cast(amount as decimal(10, 2)) as amount
from read_csv('../data/payments.csv', header = true)
