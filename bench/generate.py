"""Synthetic dbt projects of any size, deterministic for a given seed (the SQL of each kind of model is in sql/).

Three staging models over raw tables (``raw.events``, ``raw.customers``, ``raw.products``), then models in
eight layers, each reading at least one model of the layer before it, so the graph is nine models deep at
every size: about half are chain links (one parent), the rest join two or three earlier models (fan-in) or
go back to the events; every model outside the last layer is read by later ones. Each model is a table doing
real DuckDB work (tens to hundreds of milliseconds) and carries a ``not_null`` test. Optionally: CSV seeds
(every other one read by a model) with a ``not_null`` test each, and more tests up to ``tests`` in all, a
quarter ``relationships`` and the rest ``unique``. The raw tables are made with SQL in the warehouse file
(:func:`create_raw_tables`): no ingestion, since the dbt build is the cost measured.
"""

from __future__ import annotations

import os
import random
import string
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

STAGING_COLUMNS = {
    "events": ("event_id", "customer_id", "product_id", "occurred_at", "quantity"),
    "customers": ("customer_id", "region", "signup_date"),
    "products": ("product_id", "category", "price"),
}


def sql(template: str, **values: object) -> str:
    """``bench/sql/<template>.sql`` with its ``${...}`` placeholders filled in."""
    return string.Template((Path(__file__).parent / "sql" / f"{template}.sql").read_text()).substitute(values)


STAGING = {
    f"stg_raw__{table}": sql("staging", table=table, selected=",\n".join(f"        {c}" for c in columns))
    for table, columns in STAGING_COLUMNS.items()
}


def create_raw_tables(db_path: Path) -> None:
    """The raw tables every configuration builds from, written directly with SQL."""
    import duckdb

    db_path.parent.mkdir(parents=True, exist_ok=True)
    sizes = {"customers": CUSTOMERS, "products": PRODUCTS, "events": EVENTS}
    with duckdb.connect(str(db_path)) as con:
        con.execute(sql("raw_tables", **sizes, **{f"{k}_end": v + 1 for k, v in sizes.items()}))
        con.execute("checkpoint")


# Layer-1 models aggregate the staged events per customer; later ones refine them. Every model's output
# has the same columns, keyed by customer: id, grp, amount, cnt. Each kind's SQL is in bench/sql/.


def _model_sql(kind: str, parents: list[str], rng: random.Random) -> str:
    if kind == "layer_one":
        modulus = rng.choice((2, 3, 4, 5))
        return sql("layer_one", modulus=modulus, remainder=rng.randrange(modulus))
    if kind == "chain":
        return sql("chain", parent=parents[0], width=rng.choice((3, 7, 15)))
    if kind == "reaggregate":  # back to the 200k events: the heavier kind of model
        return sql("reaggregate", parent=parents[0], modulus=rng.choice((3, 5, 7)))
    numbered = range(len(parents))
    return sql(
        "fan_in",
        ctes=",\n\n".join(f"p{i} as (\n    select * from {{{{ ref('{p}') }}}}\n)" for i, p in enumerate(parents)),
        joins="\n".join(f"    inner join p{i} on p0.id = p{i}.id" for i in numbered[1:]),
        amount=" + ".join(f"p{i}.amount" for i in numbered),
        cnt=" + ".join(f"p{i}.cnt" for i in numbered),
        last=len(parents) - 1,
        groups=rng.choice((4, 8, 16)),
    )


def layer_sizes(models: int) -> list[int]:
    """How many models each layer after staging has. They are numbered in build order: int_customers_scored_0001..."""
    if models < len(STAGING) + LAYERS:
        raise ValueError(f"at least {len(STAGING) + LAYERS} models are needed for {LAYERS} layers, got {models}")
    rest = models - len(STAGING)
    return [rest // LAYERS + (1 if i < rest % LAYERS else 0) for i in range(LAYERS)]


def _layout(models: int, rng: random.Random) -> dict[str, tuple[str, list[str]]]:
    """Model name -> (kind, parents), in build order."""
    layout: dict[str, tuple[str, list[str]]] = {name: ("staging", []) for name in STAGING}
    per_layer = layer_sizes(models)
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


def _yaml(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


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
    project = {"name": PROJECT_NAME, "version": "1.0.0", "config-version": 2, "profile": PROFILE_NAME}
    project |= {"model-paths": ["models"], "clean-targets": ["target", "logs"]}
    project |= {"flags": {"send_anonymous_usage_stats": False}, "models": {PROJECT_NAME: {"+materialized": "table"}}}
    _yaml(dest / "dbt_project.yml", project)
    output = {"type": "duckdb", "path": f"{{{{ env_var('{DB_PATH_ENV}') }}}}", "threads": THREADS}
    _yaml(dest / "profiles.yml", {PROFILE_NAME: {"target": TARGET_NAME, "outputs": {TARGET_NAME: output}}})
    source = {"name": "raw", "schema": "raw", "loader": "bench.generate (SQL in the warehouse file)"}
    # Loaded outside the platform: no ingestion connection is expected. No freshness: the tables are static.
    source["meta"] = {"elt": {"external": True}}
    source["tables"] = [{"name": t, "description": f"One row per {t.removesuffix('s')}."} for t in STAGING_COLUMNS]
    _yaml(dest / "models" / "staging" / "_raw__sources.yml", {"version": 2, "sources": [source]})
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
        _yaml(dest / "seeds" / "_seeds.yml", {"version": 2, "seeds": items})
    keys = {f"stg_raw__{table}": columns[0] for table, columns in STAGING_COLUMNS.items()}  # their grain
    entries = {"staging": [], "intermediate": []}
    for name, (kind, parents) in layout.items():
        folder = "staging" if kind == "staging" else "intermediate"
        sql = STAGING[name] if kind == "staging" else _model_sql(kind, parents, rng)
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
        _yaml(dest / "models" / folder / f"_{folder}__models.yml", {"version": 2, "models": items})
    return dbt_parse(dest)


def dbt_parse(project: Path) -> Path:
    """``dbt parse`` of a generated project: its ``target/manifest.json``."""
    env = {DB_PATH_ENV: str(project / "parse.duckdb"), **os.environ}
    args = ["parse", "--quiet", "--no-partial-parse", "--project-dir", str(project), "--profiles-dir", str(project)]
    subprocess.run([str(DBT), *args], check=True, env=env, cwd=project)
    return project / "target" / "manifest.json"
