{#
  Check 3, FK integrity: no orphans. Every foreign key of the model's
  contract is checked (relationships-style anti-join, one per FK), so one
  YAML line covers all of a model's FKs and a new FK is covered the day it is
  declared. Returns each orphan with its constraint and value.
#}
{% macro foreign_keys_resolve(model) %}
    {%- set fks = contract_foreign_keys(model) -%}
    {%- if execute and not fks -%}
        {{ exceptions.raise_compiler_error("foreign_keys_resolve: model " ~ model.identifier ~ " declares no foreign_key constraint") }}
    {%- endif -%}

    {% for fk in fks %}
        select
            '{{ fk.name }}' as constraint_name,
            child.id,
            'orphan: {{ fk.name }} finds no {{ fk.to.identifier }} row' as problem,
            {%- for column in fk.columns %}
                child.{{ adapter.quote(column) }}::text{% if not loop.last %} || ', ' ||{% endif %}
            {%- endfor %} as dangling_value
        from {{ model }} as child
        left join {{ fk.to }} as parent
            on
            {%- for column in fk.columns %}
                child.{{ adapter.quote(column) }} = parent.{{ adapter.quote(fk.to_columns[loop.index0]) }}
                {%- if not loop.last %} and{% endif %}
            {%- endfor %}
        where
            {%- for column in fk.columns %}
                child.{{ adapter.quote(column) }} is not null and
            {%- endfor %}
            parent.{{ adapter.quote(fk.to_columns[0]) }} is null
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

{% endmacro %}
