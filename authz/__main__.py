from __future__ import annotations

import sys

from authz.cli import main

sys.exit(main())
