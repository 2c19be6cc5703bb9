
create schema if not exists raw;
create or replace table raw.customers as
select
    i as customer_id,
    'region_' || (i % 7) as region,
    date '2024-01-01' + cast(i % 365 as integer) as signup_date
from range(1, ${customers_end}) as t(i);
create or replace table raw.products as
select
    i as product_id,
    'category_' || (i % 13) as category,
    cast(1 + (i * 7919) % 10000 / 100.0 as decimal(10, 2)) as price
from range(1, ${products_end}) as t(i);
create or replace table raw.events as
select
    i as event_id,
    1 + (i * 7919) % ${customers} as customer_id,
    1 + (i * 104729) % ${products} as product_id,
    timestamp '2025-01-01' + to_seconds((i * 15485863) % 31536000) as occurred_at,
    1 + (i * 31) % 5 as quantity
from range(1, ${events_end}) as t(i);
