"""`python3 -m calico_double.agent` starts the agent (the image's entrypoint)."""

from .main import main

raise SystemExit(main())
