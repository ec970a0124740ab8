"""The sweep language: a spec (YAML) and its sections, trial configs and their ids, expansion
into trials with the budget applied, resources, selection, and how trials are named for people.
Pure: no files but the spec, no scheduler. Imports: model/, train/ (schemas), orchestrator.faults."""
