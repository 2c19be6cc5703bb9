"""The default transform: one ``dbt build`` per set of loads, one Airflow task per dbt node.

The data flow, one module each:

- ``results``: what the build publishes per node (dbt's status, its message, and whether
  dbt skipped it after an upstream failure or the build left it out);
- ``builds``: which build builds each node: one per set of syncs its nodes read from, so a
  model is built as soon as its own loads have landed;
- ``producer``: a build (``transform.dbt_build…``) and its result stream;
- ``policy``: the node task's state machine: an ``Outcome`` per situation, one pure
  ``decide`` function, and ``EFFECTS``, the one table from outcome to effect;
- ``node_task``: the node's task and its trigger, which act on those effects;
- ``render``: the task group, wired like the dbt graph.

The other mode, ``per_model`` (``ELT_TRANSFORM_MODE=per-model``), renders the project with
Cosmos LOCAL: one dbt invocation per task. Both render from the same manifest and graph rules
(``elt_platform.dbt_manifest``).
"""
