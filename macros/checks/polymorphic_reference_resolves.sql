{#
  A polymorphic reference (entity_type, entity_id) resolves: every row's id
  exists in the table its entity_type names (macro entity_type_models), and
  its entity_type is one of `entity_types`, the values the column's CHECK allows.
  A table whose rows stay when their entity is deleted (config.meta
  on_entity_delete: {insert: ...}, as activity_log's history) records the
  deletion in a row of those values; the rows of an entity so recorded are history.
  Fails with the rows that point nowhere.
#}
{% macro polymorphic_reference_resolves(model, column_name, id_column, entity_types) %}

{#- the targets by the relations dbt gives them, where v2 is for this command (macros/where_v2_is.sql); no
    ref(): the model depends on them (macro depends_on_entity_tables) -#}
{%- set relations = {} -%}
{%- set deletion = {} -%}
{%- if execute -%}
    {%- set where = where_v2_is() -%}
    {#- an ephemeral model (models/rollback) has no relation, and holds no entity -#}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.relation_name -%}
        {%- set relation = v2_relation(
            api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias), where
        ) | string -%}
        {%- do relations.update({node.name: relation}) -%}
        {%- if relation in model | string and node.config.meta.get('on_entity_delete', {}).insert -%}
            {%- do deletion.update({'relation': relation, 'values': node.config.meta.on_entity_delete.insert}) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}

with

references_ as (

    select
        {{ column_name }} as entity_type,
        {{ id_column }} as entity_id
    from {{ model }}

),

targets as (

    {% for entity_type in entity_types %}
        select
            '{{ entity_type }}'::text as entity_type,
            id as entity_id
        from {{ relations.get(entity_type_models()[entity_type]) }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        references_.*,
        'points nowhere: ' || references_.entity_type || ' ' || references_.entity_id as problem
    from references_
    left join targets
        on
            references_.entity_type = targets.entity_type
            and references_.entity_id = targets.entity_id
    where
        targets.entity_id is null
        {%- if deletion %}
        and not exists (
            select from {{ deletion.relation }} as deletions
            where
                deletions.{{ column_name }} = references_.entity_type
                and deletions.{{ id_column }} = references_.entity_id
                {%- for column, value in deletion['values'].items() %}
                and deletions.{{ column }} = '{{ value }}'
                {%- endfor %}
        )
        {%- endif %}

)

select * from final

{% endmacro %}
