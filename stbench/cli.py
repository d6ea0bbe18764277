"""The command line (placeholder until the engine lands)."""
def main(argv=None):
    raise SystemExit("stbench: the CLI is being written")
