/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* writes: the program of the gdb session (watch.gdb), which watches
 * counter as it is written three times. */
volatile int counter;

int main(void) {
	for (int i = 0; i < 3; i++)
		counter = i + 1;
	return 0;
}
