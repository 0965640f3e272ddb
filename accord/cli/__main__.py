from accord.cli.commands import main

raise SystemExit(main())
