"""What the stacks the tests start add to the real project: test tasks and tunable settings."""
