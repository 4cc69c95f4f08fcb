"""skyclear.restore: restoration of composite degradations (the F2D-Net-style restorer)."""
