"""imgate: the composition root (app) and the command line (cli)."""
