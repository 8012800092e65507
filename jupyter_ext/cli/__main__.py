import sys

from jupyter_ext.cli.main import main

sys.exit(main())
