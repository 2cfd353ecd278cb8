"""Pages for support agents, one module per page family: `lookup` (the start page and a
meeting's page), `tables` (the triage table, its CSV and the watch list), `tokens` (Connvo tokens
and connected accounts). `access` holds what every one of them is guarded by."""
