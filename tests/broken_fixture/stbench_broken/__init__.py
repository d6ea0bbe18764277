"""A plugin that fails to import (the tests check it is reported and skipped)."""
raise ImportError("this plugin is broken on purpose")
