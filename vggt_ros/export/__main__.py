from .cli import export_entry

export_entry()
