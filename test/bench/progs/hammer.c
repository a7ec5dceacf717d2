/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* hammer N: writes N times over an array that shares its page with
 * "watched", which it writes once at the end. */
#include <stdlib.h>

struct page {
	long array[500];
	long watched;
} __attribute__((aligned(4096)));

volatile struct page page;

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 100000000;
	for (long i = 0; i < n; i++)
		page.array[i % 500] += i;
	page.watched = page.array[7];
	return 0;
}
