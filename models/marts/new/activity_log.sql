{{ empty_from_contract() }}
{{ depends_on_entity_tables() }}
