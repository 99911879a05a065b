"""Helpers of the server benchmark (bench/run_server_bench.py): workloads, load clients, the
do-nothing and threaded server variants, process measurements. Never imported by the server."""
