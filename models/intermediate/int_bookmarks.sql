with

links as (

    select
        *,
        count(*) over (partition by link_id) as copies
    from {{ ref('stg_v1__links') }}

),

domains as (

    {{ reference_verdicts('int_domains') }}

),

projects as (

    {{ reference_verdicts('int_projects') }}

),

tasks as (

    {{ reference_verdicts('int_tasks') }}

),

checked as (

    select
        links.*,
        {{ kept_reference('domain_id', 'domains') }} as kept_domain_id,
        {{ kept_reference('project_id', 'projects') }} as kept_project_id,
        {{ kept_reference('task_id', 'tasks') }} as kept_task_id,
        {{ verdict([
            reject_if_id_null_or_repeated('link_id', 'copies'),
            reject_if_null('label'),
            reject_if_null('url'),
            reject_if_null('created_at')
        ]) }},
        {{ adjustments([('domain_id', 'domains'), ('project_id', 'projects'), ('task_id', 'tasks')]) }}
            as adjustment
    from links
    left join domains on links.domain_id = domains.id
    left join projects on links.project_id = projects.id
    left join tasks on links.task_id = tasks.id

),

final as (

    select
        link_id as id,
        kept_domain_id as domain_id,
        kept_project_id as project_id,
        kept_task_id as task_id,
        label,
        url,
        description,
        created_at,
        adjustment,
        created_at as updated_at,
        null::uuid as folder_id,
        null::text as favicon_url,
        true as is_active,
        0 as sort_order,
        null::text[] as tags,
        reject_rule,
        reject_detail
    from checked

)

select * from final
