{#
  Tasks are checked in two passes. First each task on its own (its columns, its
  domain, whether its parent exists in v1). Then along parent_id: a task in a
  parent cycle is rejected (parent_cycle), and a task below a rejected task is
  rejected too (parent_rejected), however deep, as v1's ON DELETE CASCADE on
  parent_id would have removed it.
#}
with recursive

tasks as (

    -- every column but v1_row: this CTE is materialized (read twice), and the whole
    -- v1 row would ride through its sort; migration_rejects reads v1_row from staging
    select
        task_id,
        domain_id,
        project_id,
        parent_id,
        title,
        description,
        priority,
        status,
        due_date,
        deadline,
        recurrence,
        tags,
        context,
        is_custom_context,
        created_at,
        updated_at,
        completed_at,
        count(*) over (partition by task_id) as copies
    from {{ ref('stg_v1__tasks') }}

),

domains as (

    {{ reference_verdicts('int_domains') }}

),

projects as (

    {{ reference_verdicts('int_projects') }}

),

statuses as (

    select * from {{ ref('task_status_map') }}

),

v1_task_ids as (

    select distinct task_id from tasks

),

own_checked as (

    select
        tasks.*,
        statuses.v2_status,
        {{ kept_reference('project_id', 'projects') }} as kept_project_id,
        {{ verdict([
            reject_if_id_null_or_repeated('tasks.task_id', 'copies'),
            reject_unless_parent_migrated('domain_id', 'domains'),
            reject_if('tasks.parent_id is not null and parents.task_id is null', 'orphan_fk',
                "'parent_id ' || tasks.parent_id || ' is not in v1 tasks'"),
            reject_if_null('title'),
            reject_if_null('priority'),
            reject_if('priority not between 1 and 4', 'out_of_range', "'priority ' || priority || ' is not 1-4'"),
            reject_if_null('status'),
            reject_if('statuses.v2_status is null', 'out_of_range', "'status ' || status || ' has no v2 status'"),
            reject_if_null('is_custom_context'),
            reject_if_null('created_at'),
            reject_if_null('updated_at')
        ], prefix='own_') }},
        {{ adjustments([('project_id', 'projects')]) }} as adjustment
    from tasks
    left join domains on tasks.domain_id = domains.id
    left join projects on tasks.project_id = projects.id
    left join statuses on tasks.status = statuses.v1_status
    left join v1_task_ids as parents on tasks.parent_id = parents.task_id

),

nodes as (

    select distinct on (task_id)
        task_id,
        parent_id,
        own_reject_rule is not null as own_rejected
    from own_checked
    order by task_id, own_reject_rule is not null desc

),

-- every (task, ancestor) pair, walking up parent_id; `path` stops the walk at a cycle
ancestry as (

    select
        task_id,
        parent_id as ancestor_id,
        1 as depth,
        array[task_id] as path
    from nodes
    where parent_id is not null

    union all

    select
        ancestry.task_id,
        nodes.parent_id as ancestor_id,
        ancestry.depth + 1 as depth,
        ancestry.path || ancestry.ancestor_id as path
    from ancestry
    inner join nodes on ancestry.ancestor_id = nodes.task_id
    where nodes.parent_id is not null and not ancestry.ancestor_id = any(ancestry.path)

),

lineage as (

    select
        ancestry.task_id,
        bool_or(ancestry.ancestor_id = ancestry.task_id) as in_cycle,
        (array_agg(ancestry.ancestor_id order by ancestry.depth) filter (
            where nodes.own_rejected or ancestry.ancestor_id = any(ancestry.path)
        ))[1] as rejected_ancestor_id
    from ancestry
    left join nodes on ancestry.ancestor_id = nodes.task_id
    group by ancestry.task_id

),

checked as (

    select
        own_checked.*,
        {{ verdict([
            reject_as('own_checked.own_reject_rule', 'own_checked.own_reject_detail'),
            reject_if('lineage.in_cycle', 'parent_cycle',
                "'parent_id ' || own_checked.parent_id || ' leads back to this task'"),
            reject_if('lineage.rejected_ancestor_id is not null', 'parent_rejected',
                "'ancestor task ' || lineage.rejected_ancestor_id || ' was rejected'")
        ]) }}
    from own_checked
    left join lineage on own_checked.task_id = lineage.task_id

),

final as (

    select
        task_id as id,
        domain_id,
        kept_project_id as project_id,
        parent_id,
        title,
        description,
        priority,
        v2_status as status,
        due_date,
        deadline,
        recurrence,
        tags,
        context,
        is_custom_context,
        created_at,
        updated_at,
        completed_at,
        null::uuid as assigned_to,
        null::integer as estimated_minutes,
        null::integer as actual_minutes,
        null::text as energy_level,
        true as is_active,
        {{ sort_order(
            partition_by='coalesce(kept_project_id, domain_id), kept_project_id is null, parent_id',
            order_by='reject_rule is not null, created_at, task_id'
        ) }} as sort_order,
        null::uuid as template_id,
        reject_rule,
        reject_detail,
        adjustment
    from checked

)

select * from final
