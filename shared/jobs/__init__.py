"""Jobs: the spec a client sends, the job model, its store and its orchestration logic."""
