"""Training side of sqlext: builds model bundles (needs torch and BigDL; serving never imports it)."""
