/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* The demo's debuggee: a loop that writes a global the user watches. */
#include <stdio.h>

volatile int counter;

int main(void) {
	for (int i = 0; i < 5; i++)
		counter += 10;
	printf("counter = %d\n", counter);
	return 0;
}
