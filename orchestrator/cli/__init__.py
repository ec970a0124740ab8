"""The command line and its human output: commands, tables, the demo, ``orchestrate train``.
The top of the house: it may import every layer; nothing imports it."""
