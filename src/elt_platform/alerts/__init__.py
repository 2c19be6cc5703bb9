"""Failure, retry and warning alerts through Airflow's own Slack-webhook and SMTP notifiers.

A channel is on wherever its Airflow connection exists (``ELT_SLACK_CONN_ID``,
``ELT_SMTP_CONN_ID``) and silently off where it does not. Everything here runs in the
worker when a task fails, retries or warns; nothing runs at DAG-parse time.

- Final failure of a task: one message per channel (``on_failure_callback`` fires once,
  after the last try; tasks held back by it are ``upstream_failed`` and fire nothing).
- Retry: a short Slack message, only when ``ELT_ALERT_ON_RETRY`` is on.
- dbt warnings (``warn`` severity tests, freshness ``warn_after``): one Slack message.

``message``: what an alert says; ``channels``: where it goes; ``callbacks``: the DAG's
callbacks, which describe a failed task (its model, owner, held-back models and dashboards).
"""
