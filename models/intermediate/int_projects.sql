with

projects as (

    select
        *,
        count(*) over (partition by project_id) as copies
    from {{ ref('stg_v1__projects') }}

),

domains as (

    {{ reference_verdicts('int_domains') }}

),

areas as (

    {{ reference_verdicts('int_areas') }}

),

statuses as (

    select * from {{ ref('project_status_map') }}

),

checked as (

    select
        projects.*,
        statuses.v2_status,
        {{ kept_reference('area_id', 'areas') }} as kept_area_id,
        {{ verdict([
            reject_if_id_null_or_repeated('project_id', 'copies'),
            reject_unless_parent_migrated('domain_id', 'domains'),
            reject_if_null('name'),
            reject_if_null('status'),
            reject_if('statuses.v2_status is null', 'out_of_range', "'status ' || status || ' has no v2 status'"),
            reject_if_null('created_at'),
            reject_if_null('updated_at')
        ]) }},
        {{ adjustments([('area_id', 'areas')]) }} as adjustment
    from projects
    left join domains on projects.domain_id = domains.id
    left join areas on projects.area_id = areas.id
    left join statuses on projects.status = statuses.v1_status

),

final as (

    select
        project_id as id,
        domain_id,
        kept_area_id as area_id,
        name,
        description,
        v2_status as status,
        due_date as target_date,
        created_at,
        updated_at,
        null::date as start_date,
        3 as priority,
        true as is_active,
        {{ sort_order(
            partition_by='domain_id, kept_area_id',
            order_by='reject_rule is not null, created_at, project_id'
        ) }} as sort_order,
        null::text as color,
        null::uuid as release_id,
        reject_rule,
        reject_detail,
        adjustment
    from checked

)

select * from final
