"""What tests and benchmarks share to run the service on real processes. Development only."""
