{#
  Check 2, UUIDs both ways, in one pass (a full outer join, not two EXCEPTs):
  every v1 id of `v1_table` is in v2 or listed as rejected, never both, and
  every v2 id comes from v1 or from `added_from` (rows the mapping adds on
  purpose, e.g. ref('default_context_types')). Rows the app created or deleted
  in live v2, carried forward (macro carried_ids), count as added or rejected.
  A v1 row with a NULL id (a dump without its primary key) has no id to find
  in v2: it is named as such, and is a known loss when migration_rejects lists
  the table's NULL-id rows as rejected (an accepted loss with --accept-rejects).
  Returns each offending id with its problem.
#}
{% macro reconcile_ids(model, v1_table, added_from=none) %}

    with

    v1 as (

        select
            {{ as_v2_type('id', contract_data_types(model).get('id')) }} as id,
            true as from_v1
        from {{ source('v1', v1_table) }}

    ),

    v2 as (

        select id from {{ model }}

    ),

    rejected as (

        {{ logged_ids(v1_table, 'rejected') }}

    ),

    added as (

        {{ added_ids(model, v1_table, added_from) }}

    ),

    carried as (

        {{ carried_ids(model, ['inserted', 'deleted']) }}

    ),

    checked as (

        select
            coalesce(v1.id, v2.id) as id,
            case
                when v1.from_v1 and v1.id is null
                    then case when not exists (select from rejected where v1_id is null) then 'a v1 row with a NULL id' end
                when v1.id is null and added.id is null and carried.row_id is null then 'in v2 but not in v1'
                when v2.id is null and rejected.v1_id is null and carried.row_id is null
                    then 'in v1 but neither in v2 nor rejected'
                when v2.id is not null and rejected.v1_id is not null then 'in v2 and rejected'
            end as problem
        from v1
        full outer join v2 on v1.id = v2.id
        left join rejected on v1.id = rejected.v1_id
        left join added on v2.id = added.id
        left join carried on coalesce(v1.id, v2.id)::text = carried.row_id

    )

    select * from checked
    where problem is not null

{% endmacro %}
