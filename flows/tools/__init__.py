"""Command-line tools around the flows: a local broker and an event producer."""
