{#
  The graph of edges child_column -> parent_column has no cycle (a task that
  transitively depends on itself, a folder inside its own subfolder). Walks
  every path from every edge and stops at the first node seen twice; fails
  with each start and the path that closes the loop (problem: the cycle).
#}
{% macro acyclic(model, child_column, parent_column) %}

with recursive

edges as (

    select
        {{ child_column }} as child_id,
        {{ parent_column }} as parent_id
    from {{ model }}
    where {{ parent_column }} is not null

),

walk as (

    select
        child_id as start_id,
        parent_id as current_id,
        array[child_id, parent_id] as path,
        child_id = parent_id as is_cycle
    from edges

    union all

    select
        walk.start_id,
        edges.parent_id as current_id,
        walk.path || edges.parent_id as path,
        edges.parent_id = any(walk.path) as is_cycle
    from walk
    inner join edges on walk.current_id = edges.child_id
    where not walk.is_cycle

),

final as (

    select
        start_id,
        path,
        'cycle: ' || array_to_string(path, ' -> ') as problem
    from walk
    where is_cycle

)

select * from final

{% endmacro %}
