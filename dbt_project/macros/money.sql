{#- The one type of every money column, on every warehouse: DuckDB's DECIMAL(18,2), BigQuery's
    NUMERIC(18, 2). Contracts declare it as decimal(18,2). -#}
{% macro money(expression) -%}
    cast({{ expression }} as decimal(18, 2))
{%- endmacro %}
