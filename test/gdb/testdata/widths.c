/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* Debuggee for gdb sessions: globals of every width, a struct, the heap. */
#include <stdint.h>
#include <stdlib.h>

struct point { int x; long y; char tag; };

volatile int8_t g8;
volatile int16_t g16;
volatile int32_t g32;
volatile int64_t g64;
volatile struct point pt;
volatile long *heap;
volatile long unrelated[16];

__attribute__((noinline)) void step_one(int i) { g8 += 1; g16 += i; }
__attribute__((noinline)) void step_two(int i) { g32 += i; g64 -= i; }
__attribute__((noinline)) void step_three(int i) { pt.y += i; pt.tag = 'a' + i; }

int main(void) {
	heap = malloc(8 * sizeof(long));
	for (int i = 1; i <= 3; i++) {
		unrelated[i] = i;
		step_one(i);
		step_two(i);
		step_three(i);
		long r = pt.x + g32; /* reads of pt.x and g32 */
		heap[2] = r + i;
	}
	free((void *)heap);
	return 0;
}
