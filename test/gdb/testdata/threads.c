/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* Debuggee for gdb sessions: two threads, one of which writes the watched
 * global while the other writes a different one. */
#include <pthread.h>

volatile long shared, other;

static void *worker(void *arg) {
	for (int i = 0; i < 3; i++)
		shared += 10;
	return arg;
}

int main(void) {
	pthread_t th;
	for (int i = 0; i < 3; i++)
		other += 1;
	pthread_create(&th, NULL, worker, NULL);
	pthread_join(th, NULL);
	other += 100;
	return 0;
}
