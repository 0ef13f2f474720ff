{#
  Rule catalog_matches_contract (macros/checks/catalog_matches_contract.sql)
  on every mart at once: one node and one query for all of them, since the
  rule takes no argument and reads only the catalog (a node costs dbt about
  45 ms of Python). Each failing row names its mart (column mart), its
  problem and the missing object (failing_row); the rows are stored
  (store_failures), so scripts/report and the on-run-end log_failed_rules
  name each mart and what it lacks. Every mart is listed below: a mart
  missing from the list stops the test at compile time (dbt cannot ref it).
#}
-- depends_on: {{ ref('activity_log') }}
-- depends_on: {{ ref('areas') }}
-- depends_on: {{ ref('bookmark_folders') }}
-- depends_on: {{ ref('bookmarks') }}
-- depends_on: {{ ref('calendar_events') }}
-- depends_on: {{ ref('capture') }}
-- depends_on: {{ ref('contact_group_members') }}
-- depends_on: {{ ref('contact_groups') }}
-- depends_on: {{ ref('contacts') }}
-- depends_on: {{ ref('context_types') }}
-- depends_on: {{ ref('daily_focus') }}
-- depends_on: {{ ref('domains') }}
-- depends_on: {{ ref('entity_tags') }}
-- depends_on: {{ ref('event_attendees') }}
-- depends_on: {{ ref('files') }}
-- depends_on: {{ ref('list_items') }}
-- depends_on: {{ ref('lists') }}
-- depends_on: {{ ref('milestones') }}
-- depends_on: {{ ref('note_links') }}
-- depends_on: {{ ref('notes') }}
-- depends_on: {{ ref('project_contacts') }}
-- depends_on: {{ ref('projects') }}
-- depends_on: {{ ref('releases') }}
-- depends_on: {{ ref('reminders') }}
-- depends_on: {{ ref('saved_views') }}
-- depends_on: {{ ref('search_index') }}
-- depends_on: {{ ref('search_index_queue') }}
-- depends_on: {{ ref('tags') }}
-- depends_on: {{ ref('task_dependencies') }}
-- depends_on: {{ ref('task_templates') }}
-- depends_on: {{ ref('tasks') }}
-- depends_on: {{ ref('time_blocks') }}
-- depends_on: {{ ref('time_budgets') }}
-- depends_on: {{ ref('time_entries') }}
-- depends_on: {{ ref('user_settings') }}

{{ config(store_failures=true) }}

{%- set marts = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.fqn[1] == 'marts' -%}
        {%- do marts.append(node.name) -%}
    {%- endfor -%}
{%- endif -%}

{%- for mart in marts | sort %}
    select
        '{{ mart }}'::text as mart,
        failures.problem::text as problem,
        row_to_json(failures) as failing_row
    from (
        {{ catalog_matches_contract(ref(mart)) }}
    ) as failures
    {% if not loop.last %}union all{% endif %}
{%- else %}
    select
        null::text as mart,
        null::text as problem,
        null::json as failing_row
    where false
{%- endfor %}
