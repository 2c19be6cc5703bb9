{#- The one type of every money column, which contracts declare as `numeric`: DuckDB's
    DECIMAL(18,3), BigQuery's NUMERIC. Not a parameterized type such as numeric(18,2): BigQuery
    allows those on columns only, and both this cast and dbt's contract check are casts. -#}
{% macro money(expression) -%}
    cast({{ expression }} as numeric)
{%- endmacro %}
