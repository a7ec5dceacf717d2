/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* workload: the pod's program in TestCRI and docs/deploy.md. It waits until
 * a debugger sets armed, then writes the global counter 1000 times and exits
 * 0. gdb attached from the pod's debug container sets armed while the
 * process is stopped and a watchpoint on counter is in place, so every write
 * happens with the watchpoint armed: the first one stops it with counter
 * going from 0 to 1. */
#include <stdio.h>
#include <unistd.h>

volatile int armed;
volatile int counter;

int main(void) {
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("workload: pid %d, waiting for a debugger to set armed\n", getpid());
	while (!armed)
		usleep(100 * 1000);
	for (int i = 0; i < 1000; i++)
		counter = i + 1;
	printf("workload: wrote counter %d times\n", counter);
	return 0;
}
