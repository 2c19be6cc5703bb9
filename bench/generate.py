"""Synthetic dbt projects of any size, deterministic for a given seed.

Shape: three staging models over raw tables (``raw.events``, ``raw.customers``,
``raw.products``), then intermediate models in eight layers. Each model reads at
least one model of the layer before it, so the graph is nine models deep whatever
the size; about half are chain links (one parent), the rest join two or three
earlier models (fan-in) or go back to the events, and every model outside the last
layer is read by later ones (fan-out). Each model does
real DuckDB work (aggregations over the 200k events, joins, window functions): tens
to a few hundred milliseconds, no sleeps. Every model is a table and carries one
``not_null`` test. Optionally (``seeds``, ``tests``): small CSV seeds (every other one
read by an intermediate model, which weights its amounts by it) with a ``not_null`` test each,
and more tests up to ``tests`` in all, a quarter ``relationships`` (a model's ids are its
first parent's) and the rest ``unique``.

The raw tables are created with SQL straight in the warehouse file
(:func:`create_raw_tables`): no ingestion, since the dbt build is the cost measured.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import yaml

from elt_platform.settings import Settings

PROJECT_NAME = "bench"
PROFILE_NAME = "bench"
TARGET_NAME = "bench"
# dbt threads, the project's own default (ELT_DBT_THREADS): every configuration uses this.
THREADS = Settings().dbt_threads
DB_PATH_ENV = "BENCH_DUCKDB_PATH"
LAYERS = 8
EVENTS = 200_000
CUSTOMERS = 50_000
PRODUCTS = 1_000
DBT = Path(sys.executable).parent / "dbt"

STAGING = {
    "stg_raw__events": """with source as (
    select * from {{ source('raw', 'events') }}
),

final as (
    select
        event_id,
        customer_id,
        product_id,
        occurred_at,
        quantity
    from source
)

select * from final
""",
    "stg_raw__customers": """with source as (
    select * from {{ source('raw', 'customers') }}
),

final as (
    select
        customer_id,
        region,
        signup_date
    from source
)

select * from final
""",
    "stg_raw__products": """with source as (
    select * from {{ source('raw', 'products') }}
),

final as (
    select
        product_id,
        category,
        price
    from source
)

select * from final
""",
}

RAW_TABLES_SQL = f"""
create schema if not exists raw;
create or replace table raw.customers as
select
    i as customer_id,
    'region_' || (i % 7) as region,
    date '2024-01-01' + cast(i % 365 as integer) as signup_date
from range(1, {CUSTOMERS + 1}) as t(i);
create or replace table raw.products as
select
    i as product_id,
    'category_' || (i % 13) as category,
    cast(1 + (i * 7919) % 10000 / 100.0 as decimal(10, 2)) as price
from range(1, {PRODUCTS + 1}) as t(i);
create or replace table raw.events as
select
    i as event_id,
    1 + (i * 7919) % {CUSTOMERS} as customer_id,
    1 + (i * 104729) % {PRODUCTS} as product_id,
    timestamp '2025-01-01' + to_seconds((i * 15485863) % 31536000) as occurred_at,
    1 + (i * 31) % 5 as quantity
from range(1, {EVENTS + 1}) as t(i);
"""


def create_raw_tables(db_path: Path) -> None:
    """The raw tables every configuration builds from, written directly with SQL."""
    import duckdb

    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db_path))
    try:
        con.execute(RAW_TABLES_SQL)
        con.execute("checkpoint")
    finally:
        con.close()


# Layer-1 models aggregate the staged events per customer; later ones refine them.
# Every model's output has the same columns, keyed by customer: id, grp, amount, cnt.


def _layer_one(name_rng: random.Random) -> str:
    modulus = name_rng.choice((2, 3, 4, 5))
    remainder = name_rng.randrange(modulus)
    return f"""with events as (
    select * from {{{{ ref('stg_raw__events') }}}}
    where product_id % {modulus} = {remainder}
),

products as (
    select * from {{{{ ref('stg_raw__products') }}}}
),

customers as (
    select * from {{{{ ref('stg_raw__customers') }}}}
),

final as (
    select
        customers.customer_id as id,
        hash(customers.region) % 16 as grp,
        coalesce(sum(events.quantity * products.price), 0) as amount,
        count(events.event_id) as cnt
    from customers
    left join events on customers.customer_id = events.customer_id
    left join products on events.product_id = products.product_id
    group by customers.customer_id, customers.region
)

select * from final
"""


def _chain(parent: str, rng: random.Random) -> str:
    width = rng.choice((3, 7, 15))
    return f"""with parent as (
    select * from {{{{ ref('{parent}') }}}}
),

windowed as (
    select
        id,
        grp,
        avg(amount) over (partition by grp order by id rows between {width} preceding and current row) as amount,
        sum(cnt) over (partition by grp order by id rows between {width} preceding and current row) as cnt,
        rank() over (partition by grp order by amount desc) as amount_rank
    from parent
),

final as (
    select
        id,
        grp,
        amount * (1 + amount_rank / 100000.0) as amount,
        cnt
    from windowed
)

select * from final
"""


def _fan_in(parents: list[str], rng: random.Random) -> str:
    ctes = ",\n\n".join(f"p{i} as (\n    select * from {{{{ ref('{p}') }}}}\n)" for i, p in enumerate(parents))
    joins = "\n".join(f"    inner join p{i} on p0.id = p{i}.id" for i in range(1, len(parents)))
    amount = " + ".join(f"p{i}.amount" for i in range(len(parents)))
    cnt = " + ".join(f"p{i}.cnt" for i in range(len(parents)))
    groups = rng.choice((4, 8, 16))
    return f"""with {ctes},

joined as (
    select
        p0.id,
        (p0.grp + p{len(parents) - 1}.grp) % {groups} as grp,
        {amount} as amount,
        {cnt} as cnt
    from p0
{joins}
),

group_totals as (
    select
        grp,
        sum(amount) as group_amount
    from joined
    group by grp
),

final as (
    select
        joined.id,
        joined.grp,
        joined.amount / nullif(group_totals.group_amount, 0) * 1000000 as amount,
        joined.cnt
    from joined
    inner join group_totals on joined.grp = group_totals.grp
)

select * from final
"""


def _reaggregate(parent: str, rng: random.Random) -> str:
    """Back to the 200k events: the heavier kind of model."""
    modulus = rng.choice((3, 5, 7))
    return f"""with parent as (
    select * from {{{{ ref('{parent}') }}}}
),

events as (
    select * from {{{{ ref('stg_raw__events') }}}}
),

running as (
    select
        parent.id,
        parent.grp,
        parent.cnt,
        events.product_id,
        sum(events.quantity * parent.amount / nullif(parent.cnt, 0))
            over (partition by parent.id order by events.occurred_at) as running_amount
    from parent
    inner join events on parent.id = events.customer_id
),

final as (
    select
        id,
        grp,
        max(running_amount) as amount,
        count(distinct product_id % {modulus}) + cnt as cnt
    from running
    group by id, grp, cnt
)

select * from final
"""


def _layout(models: int, rng: random.Random) -> dict[str, tuple[str, list[str]]]:
    """Model name -> (kind, parents), in build order."""
    if models < len(STAGING) + LAYERS:
        raise ValueError(f"at least {len(STAGING) + LAYERS} models are needed for {LAYERS} layers, got {models}")
    layout: dict[str, tuple[str, list[str]]] = {name: ("staging", []) for name in STAGING}
    rest = models - len(STAGING)
    per_layer = [rest // LAYERS + (1 if i < rest % LAYERS else 0) for i in range(LAYERS)]
    layers: list[list[str]] = []
    number = 0
    for depth, count in enumerate(per_layer, start=1):
        names = []
        for _ in range(count):
            number += 1
            name = f"int_customers_scored_{number:04d}"
            if depth == 1:
                layout[name] = ("layer_one", [])
            else:
                previous = layers[-1]
                earlier = [n for layer in layers for n in layer]
                # Walk the previous layer in order so that every model there gets a child.
                first = previous[len(names) % len(previous)]
                roll = rng.random()
                if roll < 0.5:
                    layout[name] = ("chain", [first])
                elif roll < 0.8:
                    others = [n for n in earlier if n != first]
                    extra = rng.sample(others, k=min(len(others), rng.choice((1, 2))))
                    layout[name] = ("fan_in", [first, *extra])
                else:
                    layout[name] = ("reaggregate", [first])
            names.append(name)
        layers.append(names)
    return layout


def _sql(kind: str, parents: list[str], rng: random.Random) -> str:
    if kind == "layer_one":
        return _layer_one(rng)
    if kind == "chain":
        return _chain(parents[0], rng)
    if kind == "fan_in":
        return _fan_in(parents, rng)
    return _reaggregate(parents[0], rng)


def generate(dest: Path, models: int, seed: int = 0, seeds: int = 0, tests: int = 0) -> Path:
    """Write a dbt project of ``models`` models (and ``seeds`` seeds, ``tests`` data tests if more than one
    per model and seed) into ``dest`` and build its manifest (``dbt parse``).

    Returns the path of ``target/manifest.json``. The warehouse file comes from the
    ``BENCH_DUCKDB_PATH`` environment variable when dbt runs.
    """
    rng = random.Random(seed)
    dest = Path(dest)
    for sub in ("staging", "intermediate"):
        (dest / "models" / sub).mkdir(parents=True, exist_ok=True)
    (dest / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": PROJECT_NAME,
                "version": "1.0.0",
                "config-version": 2,
                "profile": PROFILE_NAME,
                "model-paths": ["models"],
                "clean-targets": ["target", "logs"],
                "flags": {"send_anonymous_usage_stats": False},
                "models": {PROJECT_NAME: {"+materialized": "table"}},
            },
            sort_keys=False,
        )
    )
    (dest / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                PROFILE_NAME: {
                    "target": TARGET_NAME,
                    "outputs": {
                        TARGET_NAME: {
                            "type": "duckdb",
                            "path": f"{{{{ env_var('{DB_PATH_ENV}') }}}}",
                            "threads": THREADS,
                        }
                    },
                }
            },
            sort_keys=False,
        )
    )
    (dest / "models" / "staging" / "_raw__sources.yml").write_text(
        yaml.safe_dump(
            {
                "version": 2,
                "sources": [
                    {
                        "name": "raw",
                        "schema": "raw",
                        "loader": "bench.generate (SQL in the warehouse file)",
                        # Loaded outside the platform: no ingestion connection is expected.
                        "meta": {"elt": {"external": True}},
                        # No freshness: the raw tables are static, nothing may be stale.
                        "tables": [
                            {"name": "events", "description": "One row per event."},
                            {"name": "customers", "description": "One row per customer."},
                            {"name": "products", "description": "One row per product."},
                        ],
                    }
                ],
            },
            sort_keys=False,
        )
    )
    layout = _layout(models, rng)
    # Seeds and extra tests from a random stream of their own: without them, the projects are as before.
    extra_rng = random.Random(f"{seed}/extra")
    children = [n for n, (_, parents) in layout.items() if parents]
    readers = {n: 2 * i for i, n in enumerate(extra_rng.sample(children, k=min(len(children), (seeds + 1) // 2)))}
    extra = max(0, tests - models - seeds)
    related = set(extra_rng.sample(children, k=min(len(children), extra // 4)))
    unique = set(extra_rng.sample(list(layout), k=min(models, extra - len(related))))
    if seeds:
        (dest / "seeds").mkdir(exist_ok=True)
        for i in range(seeds):
            rows = "".join(f"{grp},{1 + extra_rng.randrange(100) / 100}\n" for grp in range(16))
            (dest / "seeds" / f"seed_weights_{i:04d}.csv").write_text("grp,weight\n" + rows)
        items = [
            {"name": f"seed_weights_{i:04d}", "columns": [{"name": "grp", "data_tests": ["not_null"]}]}
            for i in range(seeds)
        ]
        (dest / "seeds" / "_seeds.yml").write_text(yaml.safe_dump({"version": 2, "seeds": items}, sort_keys=False))
    keys = {"stg_raw__events": "event_id", "stg_raw__customers": "customer_id", "stg_raw__products": "product_id"}
    entries = {"staging": [], "intermediate": []}
    for name, (kind, parents) in layout.items():
        folder = "staging" if kind == "staging" else "intermediate"
        sql = STAGING[name] if kind == "staging" else _sql(kind, parents, rng)
        if name in readers:  # its amounts weighted by the seed's weight for their group (grp is 0-15)
            weights = f"{{{{ ref('seed_weights_{readers[name]:04d}') }}}}"
            sql = sql.replace(
                "select * from final\n",
                "select final.id, final.grp, final.amount * w.weight as amount, "
                f"final.cnt\nfrom final inner join {weights} as w on final.grp = w.grp\n",
            )
        (dest / "models" / folder / f"{name}.sql").write_text(sql)
        key = keys.get(name, "id")
        grain = f"One row per {key.removesuffix('_id') if key != 'id' else 'customer'}."
        checks = ["not_null", *(["unique"] if name in unique else [])]
        if name in related:
            checks.append({"relationships": {"arguments": {"to": f"ref('{parents[0]}')", "field": "id"}}})
        entries[folder].append({"name": name, "description": grain, "columns": [{"name": key, "data_tests": checks}]})
    for folder, items in entries.items():
        (dest / "models" / folder / f"_{folder}__models.yml").write_text(
            yaml.safe_dump({"version": 2, "models": items}, sort_keys=False)
        )
    env = {**os.environ}
    env.setdefault(DB_PATH_ENV, str(dest / "parse.duckdb"))
    subprocess.run(
        [str(DBT), "parse", "--quiet", "--no-partial-parse", "--project-dir", str(dest), "--profiles-dir", str(dest)],
        check=True,
        env=env,
        cwd=dest,
    )
    return dest / "target" / "manifest.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=0, help="CSV seeds, half of them read by models")
    parser.add_argument("--tests", type=int, default=0, help="data tests in all, if more than one per model and seed")
    parser.add_argument("--warehouse", type=Path, help="also create the raw tables in this DuckDB file")
    args = parser.parse_args()
    if args.warehouse:
        create_raw_tables(args.warehouse)
        os.environ.setdefault(DB_PATH_ENV, str(args.warehouse))
    print(generate(args.dest, args.models, args.seed, args.seeds, args.tests))


if __name__ == "__main__":
    main()
