"""``mitiga``: the operator's command-line tool (typer + rich)."""
