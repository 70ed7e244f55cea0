"""Where tokens and Connect-session records come from: plain readers, no Dagster."""
