{#
  The registry of polymorphic references: each entity_type value the app
  writes (reminders, note_links, entity_tags, activity_log, search_index,
  saved_views) and the v2 table whose id it names.
#}
{% macro entity_type_models() %}
    {{ return({
        'area': 'areas',
        'bookmark': 'bookmarks',
        'calendar_event': 'calendar_events',
        'capture': 'capture',
        'contact': 'contacts',
        'daily_focus': 'daily_focus',
        'domain': 'domains',
        'file': 'files',
        'list': 'lists',
        'milestone': 'milestones',
        'note': 'notes',
        'project': 'projects',
        'release': 'releases',
        'reminder': 'reminders',
        'task': 'tasks',
    }) }}
{% endmacro %}

{#
  In a polymorphic table's SQL: ref every table of the registry (but itself),
  so the table builds after them and its polymorphic_reference_resolves rule
  finds them built. The rule itself refs nothing but its model, so a partial
  `dbt build --select +x` never pulls it in without the table it checks.
#}
{% macro depends_on_entity_tables() %}
    {%- for table in entity_type_models().values() | unique if table != model.name %}
        -- depends_on: {{ ref(table) }}
    {%- endfor %}
{% endmacro %}
