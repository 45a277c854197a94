from imgate.cli import main

raise SystemExit(main())
