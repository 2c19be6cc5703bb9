-- The loader's next batch: Acme upgrades (changed), Umbrella signs up (new), Globex renames itself
-- without touching updated_at (seen only by the check snapshot), and three new events.
update crm.accounts set plan = 'pro', updated_at = timestamp '2026-11-10 12:00:00' where id = 1;
update crm.accounts set name = 'Globex Corp' where id = 2;
insert into crm.accounts values (4, 'Umbrella', 'free', timestamp '2026-11-10 13:00:00');
insert into crm.events values
    (5, 1, 'upgrade', timestamp '2026-11-10 12:00:00'),
    (6, 4, 'login', timestamp '2026-11-10 13:05:00'),
    (7, 4, 'login', timestamp '2026-11-10 14:00:00');
