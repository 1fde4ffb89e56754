"""The `dynabert` command line: one module per group of subcommands; `main.py` builds the parser and dispatches."""
