/* loop N: N iterations of arithmetic, then one write of "target". */
#include <stdlib.h>

volatile long target;

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 20000, sum = 0;
	for (long i = 0; i < n; i++)
		sum += i * i;
	target = sum;
	return 0;
}
