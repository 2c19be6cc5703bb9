select
    id as order_id,
    customer_id,
    ordered_on,
    cast(amount as decimal(10, 2)) as amount,
    note
from {{ source('files', 'orders') }}
