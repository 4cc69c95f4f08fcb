"""skyclear.cli: the ``degrade`` and ``restore`` commands (the only place that prints)."""
