/* writes N: N writes of the word "watched", for "perf stat -e mem:ADDR:wu"
 * and "perf record -c 1 -e mem:ADDR:wu" over it; "writes addr" prints the
 * word's address (the program is built without PIE, so that it is the same
 * in every run, in or out of a sandbox). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile long watched;

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "addr") == 0) {
		printf("%p\n", (void *)&watched);
		return 0;
	}
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	for (long i = 0; i < n; i++)
		watched = i;
	return 0;
}
