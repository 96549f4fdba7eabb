"""Pictures for people: the evaluation report's plots and page, alarm snapshots."""
