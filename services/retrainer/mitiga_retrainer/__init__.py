"""The retrainer (the command a Kubernetes Job runs): builds a training set, trains a challenger, gates it.

This package holds the training-set strategies and the champion/challenger gate so far; the command itself,
registration and rollout come with the retrainer issue.
"""
