"""``python -m gateway.client.cli``: the client commands on their own."""

import sys

from gateway.client.cli.parsing import main

sys.exit(main())
