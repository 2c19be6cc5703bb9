-- Disabled singular test (enabled: false in tests/_tests.yml): must never run.
-- It would fail if it did: it returns a row.

select 1 as always_fails
from {{ ref('orders') }}
limit 1
