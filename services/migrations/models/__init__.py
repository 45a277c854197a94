"""The migration files of tortoise app ``models``, oldest first by their number (aerich's layout:
``{location}/{app}``). Not imported as a package: the runner loads each file by path."""
