"""skyclear.datasets: torch datasets over skyclear stores and the CDD-11 release."""
