"""What every stage writes for a reader: tables (CSV, Markdown, HTML), plots, and the
provenance of each table."""
