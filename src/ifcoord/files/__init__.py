"""Files in: board markdown, STATUS YAML and ifcoord.yaml, text <-> models (pure)."""
