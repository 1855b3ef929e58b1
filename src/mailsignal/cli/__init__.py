"""The command line (Typer + Rich): `main.py` mounts one module per command group."""
