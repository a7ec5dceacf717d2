/* Copyright 2026 The hwbp Authors.
 * SPDX-License-Identifier: Apache-2.0 */

/* pause: the pod sandbox's process (the "pause" container of TestCRI's
 * local pause image), as Kubernetes' own pause does: it waits for signals,
 * reaps the children that the pod's shared PID namespace gives it as its
 * init, and exits 0 on SIGINT or SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
	(void)sig;
	_exit(0);
}

static void reap(int sig) {
	(void)sig;
	while (waitpid(-1, 0, WNOHANG) > 0)
		;
}

int main(void) {
	signal(SIGINT, quit);
	signal(SIGTERM, quit);
	signal(SIGCHLD, reap);
	for (;;)
		pause();
}
