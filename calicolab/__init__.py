"""The machinery of the suite, in layers that import only downwards (checked by
`python -m calicolab.layers`): core, then stack; provision/ (top level), infra, diagnose and
report on those; upgrade on provision and diagnose; runs on everything. tasks.py and e2e/ sit
on top."""
