"""Schema migrations (aerich's format): ``models/`` holds the files, ``runner`` applies them,
``make`` writes a new one for both SQLite and PostgreSQL. See docs/migrations.md."""
