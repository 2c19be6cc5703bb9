-- Plays the external loader for the `crm` source, first load. Idempotent.
create schema if not exists crm;

create or replace table crm.accounts (id integer, name varchar, plan varchar, updated_at timestamp);
insert into crm.accounts values
    (1, 'Acme', 'free', timestamp '2026-11-01 09:00:00'),
    (2, 'Globex', 'pro', timestamp '2026-11-01 09:00:00'),
    (3, 'Initech', 'free', timestamp '2026-11-02 10:00:00');

create or replace table crm.events (id integer, account_id integer, kind varchar, happened_at timestamp);
insert into crm.events values
    (1, 1, 'login', timestamp '2026-11-03 08:00:00'),
    (2, 2, 'login', timestamp '2026-11-03 08:05:00'),
    (3, 2, 'upgrade', timestamp '2026-11-03 08:06:00'),
    (4, 3, 'login', timestamp '2026-11-03 09:00:00');
