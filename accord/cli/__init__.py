from accord.cli.commands import main, status_query

__all__ = ["main", "status_query"]
