"""``python -m directupload_cli``: the same as the ``directupload`` command."""

from directupload_cli.cli import main

raise SystemExit(main())
