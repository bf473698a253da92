"""The demos: make demo (demo.guest) and make demo-host (demo.host)."""
