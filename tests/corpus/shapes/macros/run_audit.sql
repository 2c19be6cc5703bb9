{#- Used by the on-run-start / on-run-end hooks in dbt_project.yml. Both are
    idempotent, so they behave the same whether dbt runs the whole project or
    one node per invocation (as Airflow's per-node mode does). -#}

{% macro create_run_audit_table() -%}
    create table if not exists main.run_audit (
        invocation_id varchar,
        command varchar,
        nodes_run integer,
        nodes_failed integer,
        recorded_at timestamp
    )
{%- endmacro %}

{% macro record_run_audit(results) -%}
    {%- set failed = results | selectattr('status', 'in', ['error', 'fail']) | list -%}
    insert into main.run_audit
    values (
        '{{ invocation_id }}',
        '{{ flags.WHICH }}',
        {{ results | length }},
        {{ failed | length }},
        current_timestamp::timestamp
    )
{%- endmacro %}
