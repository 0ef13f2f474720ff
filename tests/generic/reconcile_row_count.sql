{#
  Check 1, row counts: v2 rows + rows migration_rejects lists as rejected
  == v1 rows of `v1_table`, exactly. Returns one row when they differ.
#}
{% test reconcile_row_count(model, v1_table) %}
    {{ config(store_failures=true) }}

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

    final as (

        select
            v1.v1_rows,
            v2.v2_rows,
            rejected.rejected_rows,
            'v2 rows ' || v2.v2_rows || ' + rejected ' || rejected.rejected_rows || ' != v1 rows ' || v1.v1_rows
                as problem
        from v1
        cross join v2
        cross join rejected

    )

    select * from final
    where v2_rows + rejected_rows != v1_rows

{% endtest %}
