{#
  One row per task, note, bookmark, project, capture item, calendar event,
  contact and file, with a weighted tsvector (title A, tags, URL or contact
  details B, body C) under the text-search configuration
  english (stemming) over text whose accents are folded (fold_accents(),
  macros/search_index.sql). is_active is the item's own AND its parents': an
  item whose project, domain or area (a project's) is soft-deleted is out of
  search. Deterministic, so that a re-run or a refresh of unchanged items gives
  the same rows: id is derived from (entity_type, entity_id), and created_at and
  updated_at are the item's own. The post-hook creates search_index_upsert_<type>()
  and refresh_search_index(), whose bodies are this query, and the triggers keep
  the index current (macros/search_index.sql).
#}
{{ config(post_hook="{{ create_search_index_functions() }}") }}

with

tasks as (

    select * from {{ ref('tasks') }}

),

notes as (

    select * from {{ ref('notes') }}

),

bookmarks as (

    select * from {{ ref('bookmarks') }}

),

projects as (

    select * from {{ ref('projects') }}

),

capture as (

    select * from {{ ref('capture') }}

),

calendar_events as (

    select * from {{ ref('calendar_events') }}

),

contacts as (

    select * from {{ ref('contacts') }}

),

files as (

    select * from {{ ref('files') }}

),

{#- the parents, each imported once per use: a CTE read twice is materialized whole, and the triggers that
    index a few items must reach their parents through the primary keys -#}
item_domains as (

    select * from {{ ref('domains') }}

),

parent_projects as (

    select * from {{ ref('projects') }}

),

project_domains as (

    select * from {{ ref('domains') }}

),

project_areas as (

    select * from {{ ref('areas') }}

),

documents as (

    select
        'task'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        title,
        array_to_string(tags, ' ') as keywords,
        description as body,
        is_active,
        created_at,
        updated_at
    from tasks

    union all

    select
        'note'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        title,
        array_to_string(tags, ' ') as keywords,
        body,
        is_active,
        created_at,
        updated_at
    from notes

    union all

    select
        'bookmark'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        label as title,
        url as keywords,
        description as body,
        is_active,
        created_at,
        updated_at
    from bookmarks

    union all

    select
        'project'::text as entity_type,
        id as entity_id,
        domain_id,
        id as project_id,
        name as title,
        null::text as keywords,
        description as body,
        is_active,
        created_at,
        updated_at
    from projects

    union all

    select
        'capture'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        null::text as title,
        null::text as keywords,
        raw_text as body,
        is_active,
        created_at,
        updated_at
    from capture

    union all

    select
        'calendar_event'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        title,
        location as keywords,
        description as body,
        is_active,
        created_at,
        updated_at
    from calendar_events

    union all

    select
        'contact'::text as entity_type,
        id as entity_id,
        null::uuid as domain_id,
        null::uuid as project_id,
        name as title,
        concat_ws(' ', email, company, role) as keywords,
        notes as body,
        is_active,
        created_at,
        updated_at
    from contacts

    union all

    select
        'file'::text as entity_type,
        id as entity_id,
        domain_id,
        project_id,
        original_filename as title,
        -- the name's words too: the parser reads `plan 2026.pdf` as one file-name token
        concat_ws(' ', array_to_string(tags, ' '), translate(original_filename, '._-', '   ')) as keywords,
        description as body,
        is_active,
        created_at,
        updated_at
    from files

),

-- a project is live when it, its domain and its area are active
live_projects as (

    select
        parent_projects.id as project_id,
        parent_projects.is_active
        and coalesce(project_domains.is_active, true)
        and coalesce(project_areas.is_active, true) as is_live
    from parent_projects
    left join project_domains on parent_projects.domain_id = project_domains.id
    left join project_areas on parent_projects.area_id = project_areas.id

),

final as (

    select
        documents.entity_type,
        documents.entity_id,
        documents.domain_id,
        documents.project_id,
        documents.title,
        documents.body,
        documents.created_at,
        documents.updated_at,
        md5(documents.entity_type || ':' || documents.entity_id)::uuid as id,
        documents.is_active
        and coalesce(live_projects.is_live, true)
        and coalesce(item_domains.is_active, true) as is_active,
        setweight(to_tsvector({{ search_configuration() }}, {{ search_text(this.schema, 'documents.title') }}), 'A')
        || setweight(to_tsvector({{ search_configuration() }}, {{ search_text(this.schema, 'documents.keywords') }}), 'B')
        || setweight(to_tsvector({{ search_configuration() }}, {{ search_text(this.schema, 'documents.body') }}), 'C') as document
    from documents
    left join live_projects on documents.project_id = live_projects.project_id
    left join item_domains on documents.domain_id = item_domains.id

)

select * from final
