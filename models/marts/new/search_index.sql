{#
  One row per task, note, bookmark, project and capture item, with a weighted
  tsvector (title A, tags and URL B, body C) under the language-neutral 'simple'
  configuration: the user writes in several languages, so words are not stemmed.
  The post-hook creates refresh_search_index(), whose body is this query.
#}
{{ config(post_hook="{{ create_refresh_search_index() }}") }}

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
        is_active
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
        is_active
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
        is_active
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
        is_active
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
        is_active
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
        gen_random_uuid() as id,
        setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(keywords, '')), 'B')
        || setweight(to_tsvector('simple'::regconfig, coalesce(body, '')), 'C') as document,
        now() as created_at,
        now() as updated_at
    from documents

)

select * from final
