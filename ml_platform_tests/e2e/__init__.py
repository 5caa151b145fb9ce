"""End-to-end tier: real dagster-webserver + dagster-daemon processes, the browser, the demo (all marked `slow`)."""
