"""``python -m symlinkd``: the same as the ``symlinkd`` console script."""

from symlinkd.cli import main

raise SystemExit(main())
