"""An Airflow plugin that readies the triggerer for the node tasks, as its job starts.

Every node task starts in the triggerer, and Airflow 3.3 hands each one the whole serialized
DAG there: a cost per task that grows with the project, so a run's grows with its square (a
2,000-model run stalled). The listener's ``on_starting``, Airflow's public hook called as any
of its jobs starts, has the adapter make that cost constant for the node tasks, before the
triggerer forks its runner (``dependency_internals.lighten_the_triggerer_s_work_per_task``),
unless ``ELT_TRIGGERER_PATCH`` turns it off or the adapter does not know the Airflow release.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from elt_platform.dependency_internals import in_a_triggerer, lighten_the_triggerer_s_work_per_task

log = logging.getLogger(__name__)
LIGHTENED = "Node tasks started in this triggerer get only their own part of the DAG"


class ReadyTheTriggerer:
    """The plugin's listener: acts in a triggerer only, before it forks its runner (which inherits the change)."""

    @hookimpl
    def on_starting(self, component: Any) -> None:
        if not in_a_triggerer():
            return
        from elt_platform.settings import Settings
        from elt_platform.transform.node_task import NODE_RESULT_TRIGGER

        if not Settings.from_env().triggerer_patch:
            log.info("Triggerer patch off (ELT_TRIGGERER_PATCH=false): node tasks get the whole DAG, as Airflow does.")
        elif lighten_the_triggerer_s_work_per_task(NODE_RESULT_TRIGGER):
            log.info("%s (%s).", LIGHTENED, NODE_RESULT_TRIGGER)


class TransformTriggererPlugin(AirflowPlugin):
    name = "transform_triggerer"
    listeners: ClassVar[list[Any]] = [ReadyTheTriggerer()]
