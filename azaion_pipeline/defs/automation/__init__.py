"""When things run: jobs, the landing-zone sensor, the retrain schedule, run alerts."""
