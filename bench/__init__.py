"""The benchmark (`make bench`) and the apps it compares the service with."""
