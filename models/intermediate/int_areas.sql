with

areas as (

    select * from {{ ref('stg_v1__areas') }}

),

domains as (

    select * from {{ ref('int_domains') }}
    where reject_rule is null

),

checked as (

    select
        areas.*,
        case
            when areas.name is null then 'missing_required'
            when domains.id is null then 'orphan_fk'
        end as reject_rule,
        case
            when areas.name is null then 'name is NULL; v2 areas.name is NOT NULL'
            when
                domains.id is null
                then 'domain_id ' || coalesce(areas.domain_id::text, 'NULL') || ' is not a migrated domain'
        end as reject_detail
    from areas
    left join domains on areas.domain_id = domains.id

),

final as (

    select
        area_id as id,
        domain_id,
        name,
        description,
        created_at,
        created_at as updated_at,
        true as is_active,
        {{ sort_order(partition_by='domain_id', order_by='reject_rule is not null, created_at, area_id') }}
            as sort_order,
        null::text as icon,
        null::text as color,
        reject_rule,
        reject_detail,
        null::text as adjustment
    from checked

)

select * from final
