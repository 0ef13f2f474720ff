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
  the index current (macros/search_index.sql). The query is search_documents()
  over every source of config.meta.search_sources, where each source's document
  is declared; each trigger function runs the same query over its one source.
#}
{{ config(post_hook="{{ create_search_index_functions() }}") }}
{#- the sources and parents the query reads (search_documents renders the refs at run time) #}
-- depends_on: {{ ref('tasks') }}, {{ ref('notes') }}, {{ ref('bookmarks') }}, {{ ref('projects') }}
-- depends_on: {{ ref('capture') }}, {{ ref('calendar_events') }}, {{ ref('contacts') }}, {{ ref('files') }}
-- depends_on: {{ ref('domains') }}, {{ ref('areas') }}

{{ search_documents(model.config.meta.get('search_sources', {}).keys() | list) }}
