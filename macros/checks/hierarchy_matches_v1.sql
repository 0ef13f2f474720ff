{#
  Check 6, task hierarchy: every parent chain in v2 ends at a root (no cycle,
  no broken link) and each row's depth equals its depth in v1. Depths are
  found by walking down from the roots, which always terminates: a row in a
  cycle is never reached. A row whose v1 chain was itself broken has no v1
  depth to compare; it must still reach a root in v2. Nor has a row under one
  the app created or moved in live v2, carried forward (macro carried_ids).
#}
{% macro hierarchy_matches_v1(model, v1_table, parent_column='parent_id') %}
    {%- set parent = adapter.quote(parent_column) %}
    {%- set id_type = contract_data_types(model).get('id') %}

    with recursive

    v1 as (

        select
            {{ as_v2_type('id', id_type) }} as id,
            {{ as_v2_type(parent, id_type) }} as {{ parent }}
        from {{ source('v1', v1_table) }}

    ),

    v1_tree as (

        select
            id,
            0 as depth
        from v1
        where {{ parent }} is null

        union all

        select
            child.id,
            v1_tree.depth + 1 as depth
        from v1 as child
        inner join v1_tree on child.{{ parent }} = v1_tree.id

    ),

    carried as (

        {{ carried_ids(model, ['inserted', 'updated']) }}

    ),

    v2_tree as (

        select
            id,
            0 as depth,
            id::text in (select row_id from carried) as carried
        from {{ model }}
        where {{ parent }} is null

        union all

        select
            child.id,
            v2_tree.depth + 1 as depth,
            v2_tree.carried or child.id::text in (select row_id from carried) as carried
        from {{ model }} as child
        inner join v2_tree on child.{{ parent }} = v2_tree.id

    ),

    checked as (

        select
            v2.id,
            v2.{{ parent }} as parent_id,
            v2_tree.depth as v2_depth,
            v1_tree.depth as v1_depth,
            case
                when v2_tree.id is null then 'parent chain does not end at a root (cycle or missing parent)'
                when v2_tree.depth != v1_tree.depth and not v2_tree.carried then 'depth differs from v1'
            end as problem
        from {{ model }} as v2
        left join v2_tree on v2.id = v2_tree.id
        left join v1_tree on v2.id = v1_tree.id

    )

    select * from checked
    where problem is not null

{% endmacro %}
