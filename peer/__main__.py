from peer.cli import main

raise SystemExit(main())
