{#
  Check 1, row counts: v2 rows + rows migration_rejects lists as rejected
  + v1 rows the app deleted in live v2 (carried forward, macro carried_ids)
  == v1 rows of `v1_table` + rows the mapping adds on purpose (ids from
  `added_from`, e.g. ref('default_context_types')) + rows the app created,
  exactly. Returns one row when they differ.
#}
{% macro reconcile_row_count(model, v1_table, added_from=none) %}

    with

    v1 as (

        select count(*) as v1_rows from {{ source('v1', v1_table) }}

    ),

    v2 as (

        select count(*) as v2_rows from {{ model }}

    ),

    rejected as (

        select count(*) as rejected_rows from ({{ logged_ids(v1_table, 'rejected') }}) as ids

    ),

    added as (

        select count(*) as added_rows from ({{ added_ids(model, v1_table, added_from) }}) as ids

    ),

    carried as (

        select
            count(*) filter (where v2.id is not null) as inserted_rows,
            count(*) filter (where v2.id is null and v1.id is not null) as deleted_rows
        from (select distinct row_id from ({{ carried_ids(model, ['inserted', 'deleted']) }}) as ids) as carried
        left join {{ model }} as v2 on v2.id::text = carried.row_id
        left join {{ source('v1', v1_table) }} as v1 on v1.id::text = carried.row_id

    ),

    final as (

        select
            v1.v1_rows,
            v2.v2_rows,
            rejected.rejected_rows,
            added.added_rows,
            carried.inserted_rows,
            carried.deleted_rows,
            'v2 rows ' || v2.v2_rows || ' + rejected ' || rejected.rejected_rows
            || case when carried.deleted_rows > 0 then ' + deleted by the app ' || carried.deleted_rows else '' end
            || ' != v1 rows ' || v1.v1_rows || ' + added ' || added.added_rows
            || case when carried.inserted_rows > 0 then ' + created by the app ' || carried.inserted_rows else '' end
            as problem
        from v1
        cross join v2
        cross join rejected
        cross join added
        cross join carried

    )

    select * from final
    where v2_rows + rejected_rows + deleted_rows != v1_rows + added_rows + inserted_rows

{% endmacro %}
