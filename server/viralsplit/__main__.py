import sys

from viralsplit.cli import main

sys.exit(main())
