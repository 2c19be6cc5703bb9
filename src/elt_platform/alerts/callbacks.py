"""The DAG's failure, retry and warning callbacks: a task's alert, told in the pipeline's terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt_platform.alerts.channels import send
from elt_platform.alerts.message import ERROR_XCOM_KEY, Alert, error_excerpt
from elt_platform.dbt_manifest import Manifest, load_manifest
from elt_platform.settings import Settings
from elt_platform.transform.dbt_errors import DeterministicDbtError


@dataclass
class PipelineAlerts:
    """The DAG's callbacks. ``task_nodes`` maps each dbt task id to its dbt node, filled by the factory."""

    manifest_path: Path
    connection_files: dict[str, Path] = field(repr=False)  # sync task id -> ingestion file
    task_nodes: dict[str, str] = field(default_factory=dict, repr=False)
    settings: Settings = field(default_factory=Settings.from_env, repr=False)

    def on_failure(self, context: Any) -> None:
        alert = self.describe(context, "failure")
        # The error, for the dashboards' health pages ("why"), where dbt's own result says nothing (a sync).
        context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=alert.redacted().excerpt)
        send(alert, context, self.settings)

    def on_retry(self, context: Any) -> None:
        if self.settings.alert_on_retry:
            send(self.describe(context, "retry"), context, self.settings, email=False)

    def on_warning(self, context: Any) -> None:
        ti = context["ti"]
        results = context.get("test_results") or []
        names = context.get("test_names") or []
        if not names:  # Cosmos calls this after every source freshness check, warnings or not.
            return
        facts = [("DAG", ti.dag_id), ("Run", ti.run_id), ("Task", ti.task_id)]
        facts += [(name, error_excerpt(result) or "warn") for name, result in zip(names, results, strict=False)]
        alert = Alert("warning", f"dbt warning in {ti.task_id} ({len(names)} issue(s))", facts, "", ti.log_url)
        send(alert, context, self.settings, email=False)

    def describe(self, context: Any, level: str) -> Alert:
        ti = context["ti"]
        task = context["task"]
        manifest = load_manifest(self.manifest_path)
        retries = task.retries or 0
        retries_left = max(retries - (ti.try_number - 1), 0) if level == "retry" else 0
        facts = [("DAG", ti.dag_id), ("Run", ti.run_id), ("Task", ti.task_id)]
        if ti.task_id in self.connection_files:
            headline, subject_facts, roots = self._sync(ti.task_id, context, manifest)
        else:
            headline, subject_facts, roots = self._dbt(ti.task_id, manifest)
        held_back = sorted(
            manifest.models[uid].display_name for uid in manifest.downstream_of(roots) if uid not in roots
        )
        stale = sorted(e.label for e in manifest.exposures_reading(roots | manifest.downstream_of(roots)))
        facts += subject_facts
        facts += [
            ("Try", f"{ti.try_number} of {retries + 1} ({self._retries_note(context, retries_left)})"),
            ("Held back", ", ".join(held_back) or "none"),
            ("Stale dashboards", ", ".join(stale) or "none"),
        ]
        verb = "is retrying" if level == "retry" else "failed"
        return Alert(level, f"{headline} {verb}", facts, error_excerpt(context.get("exception")), ti.log_url)

    @staticmethod
    def _retries_note(context: Any, retries_left: int) -> str:
        if isinstance(context.get("exception"), DeterministicDbtError):
            return "not retried: a retry cannot fix this error"
        return f"{retries_left} retries left"

    def _sync(self, task_id: str, context: Any, manifest: Manifest) -> tuple[str, list[tuple[str, str]], set[str]]:
        from elt_platform.ingestion.connections import load_connection_file

        path = self.connection_files[task_id]
        loaded, _ = load_connection_file(path, data_root=self.settings.ingestion_data_root)
        name = loaded.spec.name if loaded else task_id.removeprefix("sync_")
        title = loaded.spec.title if loaded else name
        dbt_source = loaded.spec.dbt_source if loaded else ""
        sources = {s.unique_id for s in manifest.source_tables(dbt_source)}
        job_id = context["ti"].xcom_pull(task_ids=task_id, key="airbyte_job_id")
        facts = [
            ("Connection", f"{title} ({path.name})"),
            ("Backend job", str(job_id) if job_id else "none (local backend)"),
            ("dbt sources held back", ", ".join(sorted(manifest.sources[u].name for u in sources)) or "none"),
        ]
        return f"Sync {name}", facts, sources

    def _dbt(self, task_id: str, manifest: Manifest) -> tuple[str, list[tuple[str, str]], set[str]]:
        unique_id = self.task_nodes.get(task_id, "")
        model = manifest.models.get(unique_id)
        if model is not None:
            facts = [
                ("Model", f"{model.display_name} ({model.unique_id})"),
                ("File", model.file),
                ("Owner", model.owner or "unassigned"),
            ]
            return f"dbt {model.resource_type} {model.display_name}", facts, {unique_id}
        if unique_id in manifest.sources:
            source = manifest.sources[unique_id]
            facts = [("Source", f"{source.name} ({unique_id})"), ("File", source.file)]
            return f"dbt source {source.name}", facts, {unique_id}
        test = manifest.tests.get(unique_id)
        parents = set(test.depends_on) if test else set()
        facts = [("dbt node", unique_id or task_id)]
        return f"dbt {unique_id.split('.')[-2] if unique_id else task_id}", facts, parents
