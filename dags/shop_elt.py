"""
### Shop ELT: Airbyte syncs, then one Airflow task per dbt model

**What runs:** each file in `ingestion/` becomes a `sync_<connection>` task that runs
its Airbyte source connector into the warehouse's raw schema. Then `transform.dbt_build`
runs the run's one `dbt build`, and each dbt node has its own task, wired like the dbt
graph, that reports its node's result: `transform.<source>.<table>` (freshness, tests)
and `transform.<model>` (the model and its tests).

**On call:**
- A failed `sync_*` task holds back exactly the models that read from it (its sources
  and the models reading them `upstream_failed`); everything else still runs.
- A failed `transform.<model>` is the model that broke; open its log for dbt's error.
  Fix it, then *Clear* that task with *Downstream* to re-run it and what follows.
- `elt check` (or `make check`) validates the ingestion files against the dbt sources.
"""

from pathlib import Path

from elt_platform.dag_factory import build_elt_dag

REPO = Path(__file__).resolve().parent.parent

dag = build_elt_dag(
    dag_id="shop_elt",
    dbt_project_dir=REPO / "dbt_project",
    ingestion_dir=REPO / "ingestion",
    schedule="@daily",
    doc_md=__doc__,
)
