"""`netguard diagnose`: why a SageMaker workload cannot reach the AWS services it needs (CLI only, never
imported by app.py). `gather` reads with the engine's collectors and lookups, `reach` follows each
destination's path over plain data (`rules` evaluates what a packet meets), `command` is the subcommand."""
