"""Training one trial: device-resident data, recipes, DDP, checkpoint/resume, result files."""
