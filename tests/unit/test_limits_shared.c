// SPDX-License-Identifier: Apache-2.0
/*
 * The host-wide table: budgets of scopes grant, agent and global are one budget for every
 * process that maps the table (gateways, the kernel plane), forked processes reserving at once
 * never pass max, slots are reused when their window ends without a late give-back touching
 * the next budget, a full table denies, and a table that is not ours, or not of this layout, is
 * refused with what to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "decide.h"
#include "limits.h"
#include "log.h"

/* A minute that starts on a multiple of 60 (and of 3600 and 86400). */
#define T0 (86400ull * 20000)

static const char policy_json[] =
	"{\"version\": \"1\", \"default\": \"deny\", \"tools\": {"
	" \"t\": {\"limits\": [{\"counter\": \"c\", \"window\": 60, \"max\": 3, \"scope\": \"global\"},"
	"                    {\"counter\": \"g\", \"window\": 60, \"max\": 100}]},"
	" \"g\": {\"limits\": [{\"counter\": \"gc\", \"window\": 60, \"max\": 2, \"scope\": \"grant\"}]},"
	" \"a\": {\"limits\": [{\"counter\": \"ac\", \"window\": 60, \"max\": 2, \"scope\": \"agent\"}]},"
	" \"s\": {\"limits\": [{\"counter\": \"sc\", \"window\": 60, \"max\": 1, \"scope\": \"session\"}]},"
	" \"u\": {\"limits\": [{\"window\": 60, \"max\": 1, \"scope\": \"global\"}]},"
	" \"h\": {\"limits\": [{\"counter\": \"hc\", \"window\": \"hour\", \"max\": 5, \"scope\": \"agent\"}]},"
	" \"two\": {\"limits\": [{\"counter\": \"x1\", \"window\": 60, \"max\": 5, \"scope\": \"agent\"},"
	"                      {\"counter\": \"x2\", \"window\": 60, \"max\": 5, \"scope\": \"agent\"}]}}}";

static uint64_t fixed_clock(void *ctx)
{
	return *(uint64_t *)ctx;
}

static char dir[64], path[96];

static int setup(void **state)
{
	strcpy(dir, "/tmp/mcpfence-tbl-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/global-budgets", dir);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static struct policy *load(void)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(policy_json, sizeof(policy_json) - 1, "mem", err);

	if (!p)
		fail_msg("%s", err);
	return p;
}

static const struct scope_keys K = { "sess-1", "1000:/usr/bin/node", "/etc/mcpfence/p.json",
				     "cmd:13:/usr/bin/node" };

static int reserve_k(struct limits *l, const struct policy *p, const char *tool,
		     const struct scope_keys *k, struct reservation *res, struct decision *d)
{
	struct reservation scratch;

	memset(d, 0, sizeof(*d));
	return limits__reserve(l, p, policy__lookup(p, tool), k, res ? res : &scratch, d);
}

static int reserve(struct limits *l, const struct policy *p, struct reservation *res,
		   struct decision *d)
{
	return reserve_k(l, p, "t", &K, res, d);
}

static struct limits *shared(uint64_t *now, uint32_t nslots)
{
	struct limits *l = limits__new(fixed_clock, now);

	assert_non_null(l);
	assert_int_equal(limits__share_table(l, path, nslots), 0);
	return l;
}

static void test_two_processes_share_one_budget(void **state)
{
	struct policy *p = load();
	uint64_t now = T0;
	struct limits *l = shared(&now, 0);
	struct reservation res;
	struct decision d;
	pid_t pid;
	int status;

	assert_int_equal(reserve(l, p, &res, &d), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* another gateway: a table of its own, the same file */
		struct limits *l2 = limits__new(fixed_clock, &now);
		int ok = limits__share_table(l2, path, 0) == 0 && reserve(l2, p, &res, &d) == 0 &&
			 reserve(l2, p, &res, &d) == 0 && reserve(l2, p, &res, &d) == -EDQUOT &&
			 !strcmp(d.pointer, "/tools/t/limits/0") && d.retry_after_s == 60;

		limits__free(l2);
		limits__free(l); /* the parent's copy, inherited */
		policy__free(p);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* 1 here + 2 there = 3: full for everyone; the grant budget too is the same one */
	assert_int_equal(reserve(l, p, &res, &d), -EDQUOT);
	assert_int_equal(d.kind, KIND_LIMIT);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 3);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[1], &K), 3);

	/* the next window refills the shared budget */
	now += 60;
	assert_int_equal(reserve(l, p, &res, &d), 0);
	/* give-back reaches the shared table */
	limits__release(l, &res);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 0);

	limits__free(l);
	policy__free(p);
}

/*
 * Two struct limits on one table are one budget for grant (per policy and server), agent (per
 * client identity) and global (the host); session stays each one's own.
 */
static void test_scopes_across_processes(void **state)
{
	struct policy *p = load();
	uint64_t now = T0 + 5;
	struct limits *a = shared(&now, 0), *b = shared(&now, 0);
	const struct scope_keys other_session = { "sess-2", K.agent, K.policy, K.server };
	const struct scope_keys other_agent = { "sess-3", "1000:/usr/bin/python3", K.policy,
						K.server };
	const struct scope_keys other_server = { "sess-4", K.agent, K.policy,
						 "cmd:13:/usr/bin/node8:other.js" };
	const struct scope_keys other_policy = { "sess-5", K.agent, "/etc/mcpfence/q.json",
						 K.server };
	struct decision d;

	/* grant: 2 for one server under one policy, whichever process and session */
	assert_int_equal(reserve_k(a, p, "g", &K, NULL, &d), 0);
	assert_int_equal(reserve_k(b, p, "g", &other_session, NULL, &d), 0);
	assert_int_equal(reserve_k(a, p, "g", &other_agent, NULL, &d), -EDQUOT);
	assert_string_equal(d.pointer, "/tools/g/limits/0");
	assert_int_equal(d.retry_after_s, 55);
	/* ... and another server, or another policy, has a budget of its own */
	assert_int_equal(reserve_k(b, p, "g", &other_server, NULL, &d), 0);
	assert_int_equal(reserve_k(b, p, "g", &other_policy, NULL, &d), 0);
	assert_int_equal(reserve_k(a, p, "g", &other_policy, NULL, &d), 0);
	assert_int_equal(reserve_k(a, p, "g", &other_policy, NULL, &d), -EDQUOT);

	/* agent: 2 for one client identity, whatever the session, server or process */
	assert_int_equal(reserve_k(a, p, "a", &K, NULL, &d), 0);
	assert_int_equal(reserve_k(b, p, "a", &other_server, NULL, &d), 0);
	assert_int_equal(reserve_k(b, p, "a", &other_session, NULL, &d), -EDQUOT);
	assert_int_equal(reserve_k(a, p, "a", &other_agent, NULL, &d), 0);

	/* session: each session its own, and a process's sessions are its own */
	assert_int_equal(reserve_k(a, p, "s", &K, NULL, &d), 0);
	assert_int_equal(reserve_k(a, p, "s", &K, NULL, &d), -EDQUOT);
	assert_int_equal(reserve_k(b, p, "s", &other_session, NULL, &d), 0);

	/* a limit without a counter is a budget of its own in its policy, even when global */
	assert_int_equal(reserve_k(a, p, "u", &K, NULL, &d), 0);
	assert_int_equal(reserve_k(b, p, "u", &other_agent, NULL, &d), -EDQUOT);
	assert_int_equal(reserve_k(b, p, "u", &other_policy, NULL, &d), 0);

	assert_int_equal(limits__used(b, &policy__lookup(p, "g")->limits[0], &K), 2);
	assert_int_equal(limits__used(b, &policy__lookup(p, "a")->limits[0], &K), 2);
	limits__free(a);
	limits__free(b);
	policy__free(p);
}

/* Processes that reserve at the same moment never let more than max through between them. */
static void test_concurrent_processes(void **state)
{
	enum { PROCS = 6, TRIES = 40 };
	const char *json = "{\"version\": \"1\", \"default\": \"deny\", \"tools\": {\"t\": {"
			   "\"rate_limit\": \"100/minute\"}}}";
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(json, strlen(json), "mem", err);
	uint64_t now = T0;
	struct limits *l = shared(&now, 0);
	int fds[2], total = 0;
	pid_t pids[PROCS];

	assert_non_null(p);
	assert_int_equal(pipe(fds), 0);
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct limits *mine = limits__new(fixed_clock, &now);
			unsigned char ok = 0;
			struct decision d;

			close(fds[0]);
			if (!limits__share_table(mine, path, 0))
				for (int t = 0; t < TRIES; t++)
					ok += reserve_k(mine, p, "t", &K, NULL, &d) == 0;
			if (write(fds[1], &ok, 1) != 1)
				_exit(2);
			limits__free(mine);
			limits__free(l);
			policy__free(p);
			_exit(0);
		}
	}
	close(fds[1]);
	for (int i = 0; i < PROCS; i++) {
		unsigned char ok;
		int status;

		assert_int_equal(read(fds[0], &ok, 1), 1);
		total += ok;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	close(fds[0]);
	/* 240 tries, 100 allowed: exactly */
	assert_int_equal(total, 100);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], &K), 100);
	limits__free(l);
	policy__free(p);
}

/* One reservation of agent budget "ac" for agent i (a slot of the table each). */
static int reserve_agent(struct limits *l, const struct policy *p, int i, struct reservation *res,
			 struct decision *d)
{
	char agent[32];
	struct scope_keys k = K;

	snprintf(agent, sizeof(agent), "1000:/agent/%d", i);
	k.agent = agent;
	return reserve_k(l, p, "a", &k, res, d);
}

static const struct limit *lim_of(const struct policy *p, const char *tool)
{
	return &policy__lookup(p, tool)->limits[0];
}

/*
 * The table is only as big as the budgets whose window is not over: when the minute ends, its
 * slots take new budgets, and the file does not grow.
 */
static void test_slots_reused(void **state)
{
	struct policy *p = load();
	uint64_t now = T0 + 1;
	struct limits *l = shared(&now, 8);
	struct decision d;
	struct stat st1, st2;

	assert_int_equal(stat(path, &st1), 0);
	for (int round = 0; round < 20; round++, now += 60) {
		for (int i = 0; i < 8; i++)
			assert_int_equal(reserve_agent(l, p, 100 * round + i, NULL, &d), 0);
		/* each is counted on its own: a second use each, then the max */
		for (int i = 0; i < 8; i++)
			assert_int_equal(reserve_agent(l, p, 100 * round + i, NULL, &d), 0);
		assert_int_equal(reserve_agent(l, p, 100 * round + 3, NULL, &d), -EDQUOT);
		assert_string_equal(d.pointer, "/tools/a/limits/0");
		/* a 9th budget in this minute has no slot */
		assert_int_equal(reserve_agent(l, p, 100 * round + 8, NULL, &d), -ENOSPC);
	}
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_size, st2.st_size);
	limits__free(l);
	policy__free(p);
}

/*
 * A reservation given back after its slot took another budget leaves that budget alone, even
 * when the two windows start at the same second (a minute's and an hour's at T0).
 */
static void test_release_after_reuse(void **state)
{
	struct policy *p = load();
	uint64_t now = T0 + 30;
	struct limits *l = shared(&now, 1), *other = shared(&now, 1);
	struct reservation old, fresh;
	struct decision d;

	assert_int_equal(reserve_k(l, p, "g", &K, &old, &d), 0);
	assert_int_equal(old.n, 1);
	assert_true(old.slot[0].shared);
	assert_int_equal(old.slot[0].window_start, T0);
	/* the minute is over: the one slot takes the agent's hour budget, which starts at T0 too */
	now = T0 + 60;
	assert_int_equal(reserve_k(other, p, "h", &K, &fresh, &d), 0);
	assert_int_equal(fresh.slot[0].budget, old.slot[0].budget);
	assert_int_equal(fresh.slot[0].window_start, T0);
	assert_int_not_equal(fresh.slot[0].gen, old.slot[0].gen);
	limits__release(l, &old);
	limits__release(l, &old);
	assert_int_equal(limits__used(l, lim_of(p, "h"), &K), 1);
	/* and the grant budget has no slot while the hour's is in its window */
	assert_int_equal(reserve_k(l, p, "g", &K, NULL, &d), -ENOSPC);
	/* its own give-back still counts */
	limits__release(other, &fresh);
	assert_int_equal(limits__used(l, lim_of(p, "h"), &K), 0);
	limits__free(l);
	limits__free(other);
	policy__free(p);
}

/*
 * Slots taken, expired, taken again and freed behind a free one, in any order: the table
 * counts as budgets kept in memory do (the oracle), whenever it has room. 64 slots, 150
 * agents with minute and hour budgets, time moving by 0 to 40 s.
 */
static void test_table_as_memory(void **state)
{
	struct policy *p = load();
	uint64_t now = T0;
	struct limits *l = shared(&now, 64), *oracle = limits__new(fixed_clock, &now);
	unsigned seed = 7, full = 0, ok = 0;
	struct decision d;

	for (int step = 0; step < 20000; step++) {
		char agent[32];
		struct scope_keys k = K;
		const char *tool = rand_r(&seed) % 3 ? "a" : "h";
		int got, want;

		if (rand_r(&seed) % 50 == 0)
			now += rand_r(&seed) % 41;
		snprintf(agent, sizeof(agent), "1000:/agent/%d", rand_r(&seed) % 150);
		k.agent = agent;
		got = reserve_k(l, p, tool, &k, NULL, &d);
		if (got == -ENOSPC) {
			full++;
			continue;
		}
		want = reserve_k(oracle, p, tool, &k, NULL, &d);
		if (got != want)
			fail_msg("step %d, t=T0+%llu, %s %s: table %d, memory %d", step,
				 (unsigned long long)(now - T0), tool, agent, got, want);
		ok += got == 0;
	}
	/* both happened: room and no room */
	assert_true(full > 100 && ok > 1000);
	limits__free(l);
	limits__free(oracle);
	policy__free(p);
}

/*
 * A full table fails closed: the call is denied with the table's name and when a slot frees,
 * and nothing of it is reserved (all or none).
 */
static void test_full_table_denies(void **state)
{
	struct policy *p = load();
	uint64_t now = T0 + 20;
	struct limits *l = shared(&now, 4);
	const struct limit *x1 = &policy__lookup(p, "two")->limits[0];
	struct decision d;
	char want[256];

	for (int i = 0; i < 3; i++)
		assert_int_equal(reserve_agent(l, p, i, NULL, &d), 0);
	/* "two" needs two budgets: one slot is left; neither is taken */
	assert_int_equal(reserve_k(l, p, "two", &K, NULL, &d), -ENOSPC);
	assert_int_equal(d.verdict, VERDICT_DENY);
	assert_int_equal(d.kind, KIND_LIMIT);
	assert_string_equal(d.pointer, "/tools/two/limits/1");
	snprintf(want, sizeof(want),
		 "the host-wide budget table %s is full (4 budgets in their window); retry in 40 s",
		 path);
	assert_string_equal(d.reason, want);
	assert_int_equal(d.retry_after_s, 40);
	assert_int_equal(limits__used(l, x1, &K), 0);
	/* what cannot be kept has nothing left (the kernel plane's global budgets read this) */
	assert_int_equal(reserve_agent(l, p, 3, NULL, &d), 0);
	assert_int_equal(limits__left(l, x1, &K), 0);
	log_level = LOG_LVL_NONE;
	assert_int_equal(limits__charge(l, x1, &K, 0), -ENOSPC);
	log_level = LOG_LVL_INFO;
	/* the next minute frees them all */
	now += 40;
	assert_int_equal(reserve_k(l, p, "two", &K, NULL, &d), 0);
	assert_int_equal(limits__left(l, x1, &K), 4);
	limits__free(l);
	policy__free(p);
}

/*
 * What the kernel plane does with the table: it charges uses already let through (past max
 * too), and reads what is left for the budget it keeps in BPF; a gateway sees both.
 */
static void test_charge_is_shared(void **state)
{
	struct policy *p = load();
	uint64_t now = 6000;
	struct limits *gw = shared(&now, 0), *kern = shared(&now, 0);
	const struct limit *glob, *sess;
	struct reservation res;
	struct decision d;

	glob = lim_of(p, "t");
	sess = lim_of(p, "s");
	assert_int_equal(limits__left(kern, glob, NULL), 3);
	assert_int_equal(reserve(gw, p, &res, &d), 0);
	assert_int_equal(limits__left(kern, glob, NULL), 2);
	assert_int_equal(limits__charge(kern, glob, NULL, 0), 0);
	assert_int_equal(limits__charge(kern, glob, NULL, now), 0);
	assert_int_equal(limits__left(kern, glob, NULL), 0);
	assert_int_equal(reserve(gw, p, &res, &d), -EDQUOT);
	assert_string_equal(d.pointer, "/tools/t/limits/0");
	/* unconditional: two planes that both let a call through count both */
	assert_int_equal(limits__charge(kern, glob, NULL, 0), 0);
	assert_int_equal(limits__used(gw, glob, NULL), 4);
	assert_int_equal(limits__left(gw, glob, NULL), 0);
	/* scope session stays each process's own */
	assert_int_equal(limits__charge(kern, sess, &K, 0), 0);
	assert_int_equal(limits__used(gw, sess, &K), 0);
	assert_int_equal(limits__used(kern, sess, &K), 1);
	/* the next window: all there again */
	now += 60;
	assert_int_equal(limits__left(kern, glob, NULL), 3);
	limits__free(gw);
	limits__free(kern);
	policy__free(p);
}

/* $MCPFENCE_RUNTIME_DIR (the gateways' and attach's runtime dir) holds the table when set. */
static void test_runtime_dir(void **state)
{
	char rt[64], want[96], buf[300];
	struct stat st;

	strcpy(rt, "/tmp/mcpfence-rt-XXXXXX");
	assert_non_null(mkdtemp(rt));
	strcat(rt, "/run");
	setenv("MCPFENCE_RUNTIME_DIR", rt, 1);
	snprintf(want, sizeof(want), "%s/global-budgets", rt);
	assert_string_equal(limits__default_table_path(buf, sizeof(buf)), want);
	assert_int_equal(stat(rt, &st), 0);
	assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0);
	unsetenv("MCPFENCE_RUNTIME_DIR");
	rmdir(rt);
	*strrchr(rt, '/') = 0;
	rmdir(rt);
}

/* Run share with stderr in a file; the log line it wrote goes to out. */
static int share_logged(struct limits *l, char *out, size_t len)
{
	char log[] = "/tmp/mcpfence-log-XXXXXX";
	int fd = mkstemp(log), saved = dup(2), err;
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	err = limits__share_table(l, path, 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(log);
	return err;
}

/*
 * A table of the earlier layout (global budgets only) is refused with what to do, and calls
 * that need a host-wide budget are denied saying so; session budgets still work.
 */
static void test_old_layout_refused(void **state)
{
	struct policy *p = load();
	uint64_t now = T0;
	struct limits *l = limits__new(fixed_clock, &now);
	char *old = calloc(1, 16 + 4096 * 256), msg[1024];
	uint32_t head[2] = { 4096, 256 };
	struct decision d;
	int fd;

	assert_non_null(old);
	memcpy(old, "MCPFGLB1", 8);
	memcpy(old + 8, head, sizeof(head));
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, old, 16 + 4096 * 256), 16 + 4096 * 256);
	close(fd);
	free(old);
	assert_int_equal(share_logged(l, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, "earlier mcpfence"));
	assert_non_null(strstr(msg, "remove the file"));
	for (const char *tool = "tga"; *tool; tool++) {
		char name[2] = { *tool, 0 };

		assert_int_equal(reserve_k(l, p, name, &K, NULL, &d), -ENOLINK);
		assert_int_equal(d.kind, KIND_LIMIT);
		assert_non_null(strstr(d.reason, "kept host-wide and the table cannot be used"));
		assert_non_null(strstr(d.reason, path));
	}
	assert_int_equal(reserve_k(l, p, "s", &K, NULL, &d), 0);
	assert_int_equal(limits__left(l, lim_of(p, "t"), NULL), 0);
	log_level = LOG_LVL_NONE;
	assert_int_equal(limits__charge(l, lim_of(p, "t"), NULL, 0), -ENOLINK);
	log_level = LOG_LVL_INFO;
	/* the table removed and opened again (what SIGHUP does for the gateway): all is well */
	unlink(path);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	assert_int_equal(reserve_k(l, p, "g", &K, NULL, &d), 0);
	limits__free(l);
	policy__free(p);
}

static void test_untrusted_table_refused(void **state)
{
	struct limits *l = limits__new(NULL, NULL);
	char msg[1024], other[128];
	uint32_t head[14] = { 99, 4, 64 };
	int fd;

	log_level = LOG_LVL_NONE; /* the refusals are expected: keep the output clean */
	/* writable by others */
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0666), 0);
	assert_int_equal(limits__share_table(l, path, 0), -EPERM);
	/* right mode, not a table */
	assert_int_equal(fchmod(fd, 0600), 0);
	assert_int_equal(write(fd, "garbage", 7), 7);
	assert_int_equal(limits__share_table(l, path, 0), -EINVAL);
	/* a table of a later layout */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "MCPFBUDG", 8, 0), 8);
	assert_int_equal(pwrite(fd, head, sizeof(head), 8), (ssize_t)sizeof(head));
	assert_int_equal(ftruncate(fd, 64 + 4 * 64), 0);
	log_level = LOG_LVL_INFO;
	assert_int_equal(share_logged(l, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "another version of mcpfence (layout 99"));
	log_level = LOG_LVL_NONE;
	/* the right head, the wrong size */
	head[0] = 2;
	assert_int_equal(pwrite(fd, head, sizeof(head), 8), (ssize_t)sizeof(head));
	assert_int_equal(ftruncate(fd, 64 + 5 * 64), 0);
	assert_int_equal(limits__share_table(l, path, 0), -EINVAL);
	assert_int_equal(ftruncate(fd, 64 + 4 * 64), 0);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	close(fd);
	unlink(path);
	/* a head of zeros (its creator died before writing it) makes a new table */
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 + 4 * 64), 0);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 64 + LIMITS_TABLE_SLOTS * 64);
	close(fd);
	unlink(path);
	/* a symlink in its place */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_true(limits__share_table(l, path, 0) < 0);
	unlink(path);
	/* a directory named through a symlink: it could be turned elsewhere after a check */
	snprintf(other, sizeof(other), "%s-link", dir);
	assert_int_equal(symlink(dir, other), 0);
	strcat(other, "/global-budgets");
	assert_int_equal(limits__share_table(l, other, 0), -ELOOP);
	*strrchr(other, '/') = 0;
	unlink(other);
	/* a directory that others may write in (no sticky bit): they could replace the table */
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(limits__share_table(l, path, 0), -EPERM);
	assert_int_equal(chmod(dir, 01777), 0);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	assert_int_equal(chmod(dir, 0700), 0);
	log_level = LOG_LVL_INFO;
	limits__free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_processes_share_one_budget, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_scopes_across_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_after_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_as_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_table_denies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_charge_is_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_layout_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_table_refused, setup, teardown),
		cmocka_unit_test(test_runtime_dir),
	};

	return cmocka_run_group_tests_name("limits_shared", tests, NULL, NULL);
}
