{#- Read one scalar field of a JSON object column as text, on any warehouse. -#}
{% macro json_field(column, key) -%}
    {{ return(adapter.dispatch('json_field')(column, key)) }}
{%- endmacro %}

{% macro default__json_field(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro bigquery__json_field(column, key) -%}
    json_value({{ column }}, '$.{{ key }}')
{%- endmacro %}
