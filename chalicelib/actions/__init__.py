"""Act: named, idempotent remediations, each with its restore plan. The only package that writes to the
resources we guard.

- `spec` and `catalog`: what each action is, declared (the resource types it acts on, from which states, the
  IAM it needs). Pure: policy, decide and tools/iam.py read them without loading the code that writes.
- one module per family of resource (notebook, jobs, vpc, subnet, vpc_endpoint, domain, security_group,
  tags): each action's "do" (the remediation) next to its "undo" (the restore plan);
- `base`: the one executor of their AWS calls, and `bind`, which chalicelib.remediate uses to join a
  declaration to its code (remediate.ACTIONS).

This file imports nothing, so that importing `chalicelib.actions.catalog` loads no writer.
"""
