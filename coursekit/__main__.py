import sys

from coursekit.course.cli import main

sys.exit(main())
