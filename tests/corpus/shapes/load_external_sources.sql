-- Plays the external loader for the `app` source (sources.yml: meta.elt.external).
-- The test harness splits this file on semicolons and runs each statement
-- against the DuckDB file BEFORE dbt (so: no semicolon outside a separator).
-- Timestamps are relative to now() so `dbt source freshness` passes.
-- Idempotent: safe to run twice on the same file.

create schema if not exists app;

create or replace table app.orders (
    id integer,
    customer_id integer,
    product_id integer,
    quantity integer,
    status varchar,
    amount_cents integer,
    ordered_at timestamp,
    updated_at timestamp
);

insert into app.orders values
    (1, 1, 1, 2, 'completed', 2500, now()::timestamp - interval 10 day, now()::timestamp - interval 9 day),
    (2, 1, 3, 1, 'completed', 3900, now()::timestamp - interval 8 day, now()::timestamp - interval 7 day),
    (3, 2, 2, 3, 'shipped', 1197, now()::timestamp - interval 6 day, now()::timestamp - interval 5 day),
    (4, 3, 4, 1, 'placed', 1175, now()::timestamp - interval 3 day, now()::timestamp - interval 3 day),
    (5, 3, 1, 1, 'returned', 1250, now()::timestamp - interval 2 day, now()::timestamp - interval 1 day),
    (6, 5, 2, 2, 'completed', 798, now()::timestamp - interval 1 day, now()::timestamp - interval 1 hour);

create or replace table app.events (
    id integer,
    customer_id integer,
    event_type varchar,
    occurred_at timestamp,
    loaded_at timestamp
);

insert into app.events values
    (1, 1, 'page_view', now()::timestamp - interval 10 day, now()::timestamp - interval 2 hour),
    (2, 1, 'add_to_cart', now()::timestamp - interval 10 day, now()::timestamp - interval 2 hour),
    (3, 2, 'page_view', now()::timestamp - interval 6 day, now()::timestamp - interval 2 hour),
    (4, 3, 'checkout', now()::timestamp - interval 3 day, now()::timestamp - interval 1 hour),
    (5, 4, 'page_view', now()::timestamp - interval 2 day, now()::timestamp - interval 1 hour),
    -- 'wishlist' is not in the accepted values of stg_app__events.event_type:
    -- that severity: warn test fails on purpose.
    (6, 5, 'wishlist', now()::timestamp - interval 1 day, now()::timestamp - interval 30 minute);
