# Summarises an Access export (the export.json key of the export Secret, decoded):
# per store and collection, the number of records and the fields exported.
to_entries[]
| .key as $store
| .value | to_entries[]
| "      \($store)/\(.key): \(.value | length) record(s); fields: \(.value | map(keys) | add // [] | unique | join(", "))"
