from cobrowse.cli import main

raise SystemExit(main())
