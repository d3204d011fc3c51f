"""`mactl`: the admin command line (Typer + Rich). Nothing imports this package."""
