"""How jobs run: the GPU embedding engine and its packing, devices and their leases, worker
processes, logs, progress, the run lock and the ends of jobs."""
