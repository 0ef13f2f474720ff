{{ empty_from_contract() }}
