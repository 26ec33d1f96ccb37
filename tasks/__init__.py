"""One thin Prefect task per stage: validate, register, build, push, deploy, smoke (plus plan)."""
