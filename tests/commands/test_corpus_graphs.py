"""Every corpus project renders through the real factory, in both transform modes, as its committed snapshot.

The snapshots (tests/corpus/_graphs/) hold each task's id, display name, upstream tasks,
trigger rule, pool and dbt selector: any unintended change to the rendering shows as a
diff there. ``ELT_UPDATE_SNAPSHOTS=1`` rewrites them after an intended one.
"""

from __future__ import annotations

import re
from dataclasses import replace
from types import SimpleNamespace

import pytest

from elt_platform.dag_factory import build_elt_dag
from elt_platform.settings import Settings
from tests import conformance

AIRFLOW_TASK_ID = re.compile(r"^[\w.-]{1,250}$")


@pytest.fixture(scope="module")
def dags(corpus):
    built = {}
    for project, path in corpus.items():
        for mode, setting in conformance.MODES.items():
            settings = replace(Settings.from_env(), transform_mode=setting)
            built[project, mode] = build_elt_dag(
                dag_id=f"corpus_{project}_{mode}", dbt_project_dir=path, settings=settings
            )
    return built


@pytest.mark.parametrize("mode", conformance.MODES)
@pytest.mark.parametrize("project", conformance.PROJECTS)
def test_rendered_graph_matches_its_snapshot(dags, project, mode):
    conformance.compare_with_snapshot(project, mode, conformance.rendered_graph(dags[project, mode]))


@pytest.mark.parametrize("mode", conformance.MODES)
@pytest.mark.parametrize("project", conformance.PROJECTS)
def test_one_task_per_model_seed_and_snapshot_and_no_sync(dags, corpus, project, mode):
    dag = dags[project, mode]
    manifest = conformance.manifest_of(corpus[project])
    expected = {f"transform.{m.task_id}" for m in manifest.models.values()}
    assert expected <= set(dag.task_ids)
    assert len(expected) == len(manifest.models)  # no two nodes share a task
    assert not [t for t in dag.task_ids if t.startswith("sync_")]
    for task_id in dag.task_ids:
        assert AIRFLOW_TASK_ID.match(task_id), task_id


@pytest.mark.parametrize("mode", conformance.MODES)
@pytest.mark.parametrize("project", conformance.PROJECTS)
def test_every_part_of_every_dashboard_s_lineage_has_its_task(dags, corpus, project, mode):
    """The health rules read each part's task state: a part without a task would read 'never ran'."""
    from elt_platform.health.lineage import dashboards

    dag = dags[project, mode]
    manifest = conformance.manifest_of(corpus[project])
    if not manifest.exposures:
        pytest.skip(f"{project} declares no exposures")
    for name, dashboard in dashboards(manifest, {}, "transform").items():
        missing = {p.task_id for p in dashboard.parts.values() if p.task_id and p.task_id not in dag.task_ids}
        assert missing == set(), (name, missing)
        assert f"dashboards.{name}" in dag.task_ids


def test_a_dashboard_s_lineage_goes_through_ephemeral_models_to_what_they_read(corpus):
    """shapes' intermediate models are ephemeral: no task, so the lineage links their readers to their inputs."""
    from elt_platform.health.lineage import dashboards

    manifest = conformance.manifest_of(corpus["shapes"])
    sales = dashboards(manifest, {}, "transform")["sales_dashboard"]
    ephemeral = {uid for uid, m in manifest.models.items() if m.is_ephemeral}
    assert ephemeral and not ephemeral & set(sales.parts)
    orders = next(p for p in sales.parts.values() if p.name == "orders")
    assert orders.parents and set(orders.parents) <= set(sales.parts)
    assert all(set(part.parents) <= set(sales.parts) for part in sales.parts.values())  # no edge dropped
    exposure = next(e for e in manifest.exposures.values() if e.name == "sales_dashboard")
    assert set(sales.marts) == set(exposure.depends_on)  # what the picture links to the dashboard


@pytest.mark.parametrize(
    ("error", "deterministic"),
    [('IO Error: No files found that match the pattern "../data/payments.csv"', True), ("Connection reset", False)],
)
def test_a_per_model_task_fails_at_once_only_on_an_error_no_retry_can_fix(dags, monkeypatch, error, deterministic):
    """Per-model mode: Cosmos's own LOCAL task per node, as the platform's subclass of it."""
    from cosmos.exceptions import CosmosDbtRunError

    from elt_platform.transform.dbt_errors import DeterministicDbtError

    task = dags["files_and_python", "per_model"].get_task("transform.stg_files__payments")
    monkeypatch.setattr("cosmos.dbt.runner.extract_message_by_status", lambda result, _: (["payments"], [error]))
    with pytest.raises((CosmosDbtRunError, DeterministicDbtError)) as raised:
        task.handle_exception_dbt_runner(SimpleNamespace(success=False, exception=None))
    assert isinstance(raised.value, DeterministicDbtError) is deterministic
    assert error in str(raised.value)
