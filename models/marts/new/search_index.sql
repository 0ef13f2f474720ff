{#
  One row per task, note, bookmark, project and capture item, with a weighted
  tsvector (title A, tags and URL B, body C) under the language-neutral 'simple'
  configuration: the user writes in several languages, so words are not stemmed.
  Deterministic, so that a re-run or a refresh of unchanged items gives the
  same rows: id is derived from (entity_type, entity_id), and created_at and
  updated_at are the item's own. The post-hook creates search_index_upsert()
  and refresh_search_index(), whose bodies are this query, and the triggers
  that keep the index current (macros/search_index.sql).
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

),

final as (

    select
        entity_type,
        entity_id,
        domain_id,
        project_id,
        title,
        body,
        is_active,
        created_at,
        updated_at,
        md5(entity_type || ':' || entity_id)::uuid as id,
        setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(keywords, '')), 'B')
        || setweight(to_tsvector('simple'::regconfig, coalesce(body, '')), 'C') as document
    from documents

)

select * from final
