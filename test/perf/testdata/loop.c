/*
 * loop: writes a global 1,000,000 times, for perf stat -e mem:ADDR:wu. Built
 * without PIE, so that the global's address is the same on the host and in
 * the sandbox; "loop addr" prints it.
 */
#include <stdio.h>
#include <string.h>

volatile long counter;

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "addr") == 0) {
		printf("%p\n", (void *)&counter);
		return 0;
	}
	for (long i = 0; i < 1000000; i++)
		counter = i;
	return 0;
}
