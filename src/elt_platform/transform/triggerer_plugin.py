"""An Airflow plugin that readies the triggerer for the node tasks, as its job starts.

Every node task starts in the triggerer, and Airflow 3.3 hands each one the whole serialized
DAG there: a cost per task that grows with the project, so a run's grows with its square (a
2,000-model run stalled). Each one that ends there also queues a success callback it does not
have, for which the DAG processor parses the DAG file again. The listener's ``on_starting``,
Airflow's public hook called as any of its jobs starts, has the adapter remove both costs for
the node tasks before the triggerer forks its runner (``dependency_internals``), unless
``ELT_TRIGGERER_PATCH`` turns it off or the adapter does not know the Airflow release
(docs/airflow-triggerer-patch.md).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from elt_platform.dependency_internals import (
    in_a_triggerer,
    lighten_the_triggerer_s_work_per_task,
    quiet_success_callbacks_of,
)

log = logging.getLogger(__name__)
LIGHTENED = "Node tasks started in this triggerer get only their own part of the DAG"
QUIETED = "Node tasks that succeed in this triggerer queue no success callback (they have none)"


class ReadyTheTriggerer:
    """The plugin's listener: acts in a triggerer only, before it forks its runner (which inherits the change)."""

    @hookimpl
    def on_starting(self, component: Any) -> None:
        if not in_a_triggerer():
            return
        from elt_platform.settings import Settings, SettingsError
        from elt_platform.transform.node_task import NODE_RESULT_TRIGGER, DbtNodeTask

        try:
            wanted = Settings.from_env().triggerer_patch
        except SettingsError as error:  # the triggerer runs on; the DAG's own import error says the same
            log.error("Triggerer patch off: the platform's settings cannot be read.\n%s", error)
            return
        if not wanted:
            log.info("Triggerer patch off (ELT_TRIGGERER_PATCH=false): node tasks are handled as Airflow does.")
        elif lighten_the_triggerer_s_work_per_task(NODE_RESULT_TRIGGER):
            log.info("%s (%s).", LIGHTENED, NODE_RESULT_TRIGGER)
            quiet_success_callbacks_of({DbtNodeTask.__name__})
            log.info("%s.", QUIETED)


class TransformTriggererPlugin(AirflowPlugin):
    name = "transform_triggerer"
    listeners: ClassVar[list[Any]] = [ReadyTheTriggerer()]
