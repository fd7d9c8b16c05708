// SPDX-License-Identifier: Apache-2.0
/* server_proc: the MCP server `mcpfence run` starts, from fork to reaping. */
#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "log.h"
#include "server_proc.h"

#define DRAIN_MS 1000 /* after the server exits, how long its last output may take */

void server_proc__init(struct server_proc *sp, unsigned grace_ms)
{
	*sp = (struct server_proc){ .to_fd = -1, .from_fd = -1, .grace_ms = grace_ms };
}

int server_proc__spawn(struct server_proc *sp, char **argv, const sigset_t *oldmask)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	pid_t parent = getpid();

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		log_err("pipe: %s", strerror(errno));
		return -errno;
	}
	sp->pid = fork();
	if (sp->pid < 0) {
		log_err("fork: %s", strerror(errno));
		return -errno;
	}
	if (sp->pid == 0) {
		/* the server gets a plain environment: default signals, no mask, its own group */
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		setpgid(0, 0);
		if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		log_err("cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	sp->to_fd = in[1];
	sp->from_fd = out[0];
	fcntl(sp->to_fd, F_SETFL, O_NONBLOCK);
	fcntl(sp->from_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

void server_proc__close_stdin(struct server_proc *sp, uint64_t now)
{
	if (sp->in_closed)
		return;
	sp->in_closed = true;
	close(sp->to_fd);
	sp->to_fd = -1;
	if (!sp->exited && !sp->term_at)
		sp->term_at = now + sp->grace_ms * 1000ull;
}

void server_proc__reap(struct server_proc *sp, uint64_t now)
{
	int st;

	if (sp->exited || waitpid(sp->pid, &st, WNOHANG) != sp->pid)
		return;
	sp->exited = true;
	sp->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	sp->drain_until = now + DRAIN_MS * 1000ull;
	log_debug("server exited with %d", sp->status);
}

void server_proc__signal(struct server_proc *sp, int sig, uint64_t now)
{
	if (sp->exited)
		return;
	kill(sp->pid, sig);
	/* the server decides how to stop, within a grace period (at least 2.5 s) */
	if (!sp->kill_at)
		sp->kill_at = now + (sp->grace_ms > 2500 ? sp->grace_ms : 2500) * 1000ull;
}

void server_proc__timers(struct server_proc *sp, uint64_t now)
{
	if (sp->term_at && now >= sp->term_at && !sp->exited) {
		log_info("the server did not exit after its stdin closed: SIGTERM");
		kill(sp->pid, SIGTERM);
		sp->term_at = 0;
		sp->kill_at = now + sp->grace_ms * 1000ull;
	} else if (sp->kill_at && now >= sp->kill_at && !sp->exited) {
		log_warn("the server did not exit: SIGKILL");
		kill(sp->pid, SIGKILL);
		sp->kill_at = 0;
	}
}

uint64_t server_proc__deadline(const struct server_proc *sp)
{
	uint64_t t[] = { sp->term_at, sp->kill_at, sp->drain_until }, soon = 0;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i] && (!soon || t[i] < soon))
			soon = t[i];
	return soon;
}

bool server_proc__drained(const struct server_proc *sp, uint64_t now)
{
	return sp->drain_until && now >= sp->drain_until;
}

void server_proc__stop(struct server_proc *sp)
{
	if (sp->pid > 0 && !sp->exited) {
		kill(sp->pid, SIGKILL);
		waitpid(sp->pid, NULL, 0);
		sp->exited = true;
	}
	if (sp->to_fd >= 0)
		close(sp->to_fd);
	if (sp->from_fd >= 0)
		close(sp->from_fd);
	sp->to_fd = sp->from_fd = -1;
}

/* argv0 as execvp finds it: a path as it is, else the first executable file along PATH. */
static char *find_command(const char *argv0)
{
	const char *path = getenv("PATH"), *p;
	char def[256], cand[PATH_MAX], real[PATH_MAX];

	if (strchr(argv0, '/'))
		return strdup(realpath(argv0, real) ? real : argv0);
	if (!path) {
		/* execvp's own default when PATH is unset */
		if (!confstr(_CS_PATH, def, sizeof(def)))
			snprintf(def, sizeof(def), "/bin:/usr/bin");
		path = def;
	}
	for (p = path;; p++) {
		const char *end = strchrnul(p, ':');
		struct stat st;
		int len = (int)(end - p);

		/* an empty entry is the working directory */
		snprintf(cand, sizeof(cand), "%.*s%s%s", len, p, len ? "/" : "", argv0);
		if (!stat(cand, &st) && S_ISREG(st.st_mode) && !access(cand, X_OK))
			return strdup(realpath(cand, real) ? real : cand);
		if (!*end)
			break;
		p = end;
	}
	return strdup(argv0);
}

char *server_proc__identity(char *const argv[], const char *name)
{
	char *id = NULL, *cmd;
	size_t len = 0;
	FILE *f;

	if (name) {
		if (asprintf(&id, "name:%s", name) < 0)
			id = NULL;
		return id;
	}
	cmd = find_command(argv[0]);
	f = open_memstream(&id, &len);
	if (!cmd || !f) {
		free(cmd);
		if (f)
			fclose(f);
		free(id);
		errno = ENOMEM;
		return NULL;
	}
	fprintf(f, "cmd:%zu:%s", strlen(cmd), cmd);
	for (size_t i = 1; argv[i]; i++)
		fprintf(f, "%zu:%s", strlen(argv[i]), argv[i]);
	free(cmd);
	if (fclose(f)) {
		free(id);
		errno = ENOMEM;
		return NULL;
	}
	return id;
}
