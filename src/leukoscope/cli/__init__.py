"""The `leukoscope` command line: one module per stage, each a Typer app or command."""
