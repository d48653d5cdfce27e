"""``python -m rl_train`` is ``rl-train``."""

from rl_train.cli import main

raise SystemExit(main())
