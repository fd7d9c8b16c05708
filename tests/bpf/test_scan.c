// SPDX-License-Identifier: Apache-2.0
/*
 * The in-kernel MCP scanner (bpf/mcp_scan.bpf.h), run by the kernel through BPF_PROG_TEST_RUN of
 * bpf/scan_test.bpf.c, against:
 *  - the expected result of each hostile case in tests/data/messages/ (NAME.json + NAME.expect),
 *  - jansson on the same bytes (tests/bpf/scan_ref.h): the scanner saying OK while jansson reads
 *    another method, tool name or id is a security bug, and fails the test,
 *  - the same code built for userspace (the fuzzer's build): both must give the same result;
 *    so must the kernel build with MCP_SCAN_GLOBAL_STEP (bpf/scan_test_global.bpf.c).
 * NAME.expect is JSON: {"status": "OK"|"UNPARSED"|"INCOMPLETE", "end": N, "flags": ["batch",
 * "trailing", "newline"], "calls": [{"method": M, "name": N, "id": RAW}]} — for OK, every field
 * is checked (an absent method/name/id means the scanner must not report one); "why" says what
 * the case tries. The OK expectations are also checked against Node's JSON.parse, with no kernel
 * (tests/unit/test_scan_expect.c).
 * Root only: skips with the reason when BPF cannot be loaded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mcpfence.h"
#include "scan_test.skel.h"
#include "scan_test_global.skel.h"
#include "scan_ref.h"
#include "feature_probes.h"

#define HDR 16 /* scan_test.bpf.c: bytes before the message in data_in */

struct env {
	struct scan_test_bpf *skel;
	struct scan_test_global_bpf *gskel; /* built with MCP_SCAN_GLOBAL_STEP */
	int prog_fd[2];
	struct mcpf_scan_result *out[2];
	int variant;		 /* which of the two bpf_scan() runs */
	char dir[PATH_MAX + 64]; /* tests/data/messages */
	char skip[256];
	char broken[256]; /* the programs are refused where they should load: fail */
};

#define SKIP_IF_NEEDED()                            \
	do {                                        \
		if (env.broken[0])                  \
			fail_msg("%s", env.broken); \
		if (env.skip[0])                    \
			skip();                     \
	} while (0)

static struct env env;
static struct mcpf_scan_buf ubuf;
static struct mcpf_scan_result ures;

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN && getenv("MCPF_TEST_DEBUG") ? vfprintf(stderr, fmt, ap) : 0;
}

static int find_data_dir(char *dir, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n;
	char *p;
	int i;

	snprintf(dir, len, "tests/data/messages");
	if (!access(dir, R_OK))
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = 0;
	for (i = 0; i < 4; i++) { /* build/tests/bpf/test_scan -> the tree's root */
		p = strrchr(exe, '/');
		if (!p)
			return -ENOENT;
		*p = 0;
	}
	snprintf(dir, len, "%s/tests/data/messages", exe);
	return access(dir, R_OK) ? -ENOENT : 0;
}

static int group_setup(void **state)
{
	int err;

	libbpf_set_print(silent);
	if (find_data_dir(env.dir, sizeof(env.dir))) {
		fprintf(stderr, "tests/data/messages not found\n");
		return -1;
	}
	if (geteuid() != 0) {
		snprintf(env.skip, sizeof(env.skip), "not root: BPF_PROG_TEST_RUN needs CAP_BPF");
		return 0;
	}
	features__mount();
	env.skel = scan_test_bpf__open_and_load();
	err = env.skel ? 0 : -errno;
	if (!err) {
		env.gskel = scan_test_global_bpf__open_and_load();
		err = env.gskel ? 0 : -errno;
	}
	if (err) {
		char why[200];

		/* a kernel without what they need skips; one with it that refuses them is a bug */
		if (features__scan_test(why, sizeof(why)))
			snprintf(env.skip, sizeof(env.skip),
				 "the scanner's test-run programs do not load here (%s): %s",
				 strerror(-err), why);
		else
			snprintf(env.broken, sizeof(env.broken),
				 "the verifier refused the scanner's test-run programs (%s) on a "
				 "kernel with all they need",
				 strerror(-err));
		return 0;
	}
	env.prog_fd[0] = bpf_program__fd(env.skel->progs.scan_test_xdp);
	env.out[0] = &env.skel->bss->scan_out;
	env.prog_fd[1] = bpf_program__fd(env.gskel->progs.scan_test_xdp);
	env.out[1] = &env.gskel->bss->scan_out;
	return 0;
}

static int group_teardown(void **state)
{
	scan_test_global_bpf__destroy(env.gskel);
	scan_test_bpf__destroy(env.skel);
	return 0;
}

/* The scanner in the kernel (build env.variant), on len bytes; its result in *res. */
static int bpf_scan_from(const void *msg, __u32 start, size_t len, struct mcpf_scan_result *res,
			 __u32 repeat, __u32 *duration)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);
	size_t n = HDR + len;
	char *in = calloc(1, n);
	int err;

	if (!in)
		return -ENOMEM;
	memcpy(in, &start, sizeof(start));
	memcpy(in + HDR, msg, len);
	opts.data_in = in;
	opts.data_size_in = n;
	opts.repeat = repeat;
	err = bpf_prog_test_run_opts(env.prog_fd[env.variant], &opts);
	free(in);
	if (err)
		return err;
	if (opts.retval != 2 /* XDP_PASS */)
		return -EIO;
	if (duration)
		*duration = opts.duration;
	memcpy(res, env.out[env.variant], sizeof(*res));
	return 0;
}

static int bpf_scan(const void *msg, size_t len, struct mcpf_scan_result *res, __u32 repeat,
		    __u32 *duration)
{
	return bpf_scan_from(msg, 0, len, res, repeat, duration);
}

/* The same scanner built for userspace, with bytes past len that a careless scanner would read. */
static void user_scan(const void *msg, size_t len, struct mcpf_scan_result *res)
{
	size_t n = len > MCPF_SCAN_BUF_MAX ? MCPF_SCAN_BUF_MAX : len;

	memcpy(ubuf.data, msg, n);
	memset(ubuf.data + n, '}', sizeof(ubuf.data) - n);
	mcp_scan(&ubuf, len, res);
}

/* The kernel's and the userspace build's results: same header, same calls (past ncalls is left). */
static int same_result(const struct mcpf_scan_result *a, const struct mcpf_scan_result *b)
{
	return !memcmp(a, b, offsetof(struct mcpf_scan_result, calls)) &&
	       !memcmp(a->calls, b->calls, a->ncalls * sizeof(a->calls[0]));
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || !(buf = malloc(st.st_size + 1)))
		goto out_close;
	n = read(fd, buf, st.st_size);
	if (n != st.st_size) {
		free(buf);
		buf = NULL;
		goto out_close;
	}
	buf[n] = 0;
	*len = n;
out_close:
	close(fd);
	return buf;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_case(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && !strcmp(d->d_name + n - 5, ".json");
}

static const char *flag_names[] = { "batch", "trailing", "newline" };
/* enum mcpf_why, as an expectation's "reason" names it */
static const char *why_names[MCPF_WHY_MAX] = {
	"none",	   "json",     "bound",	    "dup-key", "folded-key", "shape",
	"id",	   "trailing", "newline",   "framing", "encoding",   "media-type",
	"charset", "headers",  "too-large", "busy",    "incomplete",
};

/* 0 when res is what NAME.expect says; else -1 with the reason. */
static int check_expect(const json_t *ex, const struct mcpf_scan_result *res, char *why,
			size_t whylen)
{
	const char *status = json_string_value(json_object_get(ex, "status"));
	const char *reason = json_string_value(json_object_get(ex, "reason"));
	const json_t *end = json_object_get(ex, "end"), *flags = json_object_get(ex, "flags");
	const json_t *calls = json_object_get(ex, "calls"), *v;
	__u32 want_flags = 0;
	size_t i, j;

	if (!status)
		return scan_ref__fail(why, whylen, "expect: no status");
	if (strcmp(status, scan_ref__status_name(res->status)))
		return scan_ref__fail(why, whylen, "status %s, expected %s (stopped at %u)",
				      scan_ref__status_name(res->status), status, res->end);
	if (reason && (res->why >= MCPF_WHY_MAX || strcmp(reason, why_names[res->why])))
		return scan_ref__fail(why, whylen, "reason %s, expected %s",
				      res->why < MCPF_WHY_MAX ? why_names[res->why] : "?", reason);
	if (res->status != MCPF_SCAN_OK)
		return 0;
	if (end && json_integer_value(end) != res->end)
		return scan_ref__fail(why, whylen, "end %u, expected %lld", res->end,
				      json_integer_value(end));
	json_array_foreach(flags, i, v)
		for (j = 0; j < 3; j++)
			if (json_is_string(v) && !strcmp(json_string_value(v), flag_names[j]))
				want_flags |= 1u << j;
	if (want_flags != res->flags)
		return scan_ref__fail(why, whylen, "flags %#x, expected %#x", res->flags,
				      want_flags);
	if (json_array_size(calls) != res->ncalls)
		return scan_ref__fail(why, whylen, "%u calls, expected %zu", res->ncalls,
				      json_array_size(calls));
	json_array_foreach(calls, i, v) {
		const struct mcpf_call *c = &res->calls[i];
		const json_t *m = json_object_get(v, "method"), *n = json_object_get(v, "name");
		const json_t *id = json_object_get(v, "id");

		if (!!m != !!(c->flags & MCPF_CALL_HAS_METHOD) ||
		    (m && !scan_ref__same_string(m, c->method, c->method_len)))
			return scan_ref__fail(why, whylen, "call %zu: method \"%.*s\"", i,
					      c->method_len, c->method);
		if (!!n != !!(c->flags & MCPF_CALL_HAS_NAME) ||
		    (n && !scan_ref__same_string(n, c->name, c->name_len)))
			return scan_ref__fail(why, whylen, "call %zu: name \"%.*s\"", i,
					      c->name_len, c->name);
		if (!!id != !!(c->flags & MCPF_CALL_HAS_ID) ||
		    (id && !scan_ref__same_string(id, c->id, c->id_len)))
			return scan_ref__fail(why, whylen, "call %zu: id %.*s", i, c->id_len,
					      c->id);
	}
	return 0;
}

/* Every case: the kernel's result == the expectation, == the userspace build, and consistent
 * with jansson. */
static void test_corpus(void **state)
{
	struct mcpf_scan_result kres, *ures_p = &ures;
	char path[PATH_MAX * 2], why[256];
	struct dirent **ents = NULL;
	int n, i, failed = 0, ok = 0, unparsed = 0;
	json_error_t jerr;
	size_t len, elen;
	char *msg, *ex;
	json_t *expect;

	SKIP_IF_NEEDED();
	n = scandir(env.dir, &ents, is_case, cmp_names);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", env.dir, ents[i]->d_name);
		msg = read_file(path, &len);
		assert_non_null(msg);
		strcpy(path + strlen(path) - 5, ".expect");
		ex = read_file(path, &elen);
		if (!ex) {
			fprintf(stderr, "FAIL %s: no .expect beside it\n", ents[i]->d_name);
			failed++;
			free(msg);
			continue;
		}
		expect = json_loadb(ex, elen, 0, &jerr);
		free(ex);
		if (!expect) {
			fprintf(stderr, "FAIL %s: %s\n", path, jerr.text);
			failed++;
			free(msg);
			continue;
		}
		env.variant = 1;
		assert_int_equal(bpf_scan(msg, len, &kres, 1, NULL), 0);
		user_scan(msg, len, ures_p);
		if (!same_result(&kres, ures_p)) {
			fprintf(stderr, "FAIL %s: the global-step kernel build differs\n",
				ents[i]->d_name);
			failed++;
		}
		env.variant = 0;
		assert_int_equal(bpf_scan(msg, len, &kres, 1, NULL), 0);
		if (!same_result(&kres, ures_p)) {
			fprintf(stderr, "FAIL %s: kernel and userspace builds differ\n",
				ents[i]->d_name);
			failed++;
		} else if (scan_ref__check(msg, len, &kres, why, sizeof(why))) {
			fprintf(stderr, "FAIL %s: SECURITY: %s\n", ents[i]->d_name, why);
			failed++;
		} else if (check_expect(expect, &kres, why, sizeof(why))) {
			fprintf(stderr, "FAIL %s: %s\n", ents[i]->d_name, why);
			failed++;
		} else {
			kres.status == MCPF_SCAN_OK ? ok++ : unparsed++;
		}
		json_decref(expect);
		free(msg);
		free(ents[i]);
	}
	free(ents);
	printf("corpus: %d cases, %d read OK, %d not OK as expected, %d failed\n", n, ok, unparsed,
	       failed);
	assert_int_equal(failed, 0);
}

/*
 * Every prefix of every case, in userspace (the code the kernel runs, same bytes out): a prefix
 * of a value is never OK unless it is the whole value, and never reads differently from jansson.
 */
static void test_prefixes(void **state)
{
	struct dirent **ents = NULL;
	char path[PATH_MAX * 2], why[256];
	int n, i, failed = 0;
	size_t len, k;
	char *msg;

	n = scandir(env.dir, &ents, is_case, cmp_names);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", env.dir, ents[i]->d_name);
		msg = read_file(path, &len);
		assert_non_null(msg);
		for (k = 0; k < len && k < 4096; k++) {
			user_scan(msg, k, &ures);
			if (scan_ref__check(msg, k, &ures, why, sizeof(why))) {
				fprintf(stderr, "FAIL %s, first %zu bytes: %s\n", ents[i]->d_name,
					k, why);
				failed++;
				break;
			}
		}
		free(msg);
		free(ents[i]);
	}
	free(ents);
	assert_int_equal(failed, 0);
}

/* Build a message of about len bytes: a tools/call whose argument text fills it. */
static char *sized_call(size_t len, size_t *out_len)
{
	const char *head = "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\",\"params\":"
			   "{\"name\":\"echo\",\"arguments\":{\"message\":\"";
	const char *tail = "\"}}}";
	size_t h = strlen(head), t = strlen(tail), fill = len > h + t ? len - h - t : 0, i;
	char *m = malloc(h + fill + t + 1);

	assert_non_null(m);
	memcpy(m, head, h);
	for (i = 0; i < fill; i++)
		m[h + i] = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "[i % 57];
	memcpy(m + h + fill, tail, t + 1);
	*out_len = h + fill + t;
	return m;
}

/* Packed messages, as stdio writes coalesce them: each one read in turn from the previous end. */
static void test_packed(void **state)
{
	const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			  "{\"name\":\"echo\"}}\n"
			  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
			  "{\"name\":\"delete\"}}\n"
			  " [{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]\n";
	static const char *names[] = { "echo", "delete", NULL };
	struct mcpf_scan_result r;
	size_t len = strlen(msg);
	__u32 start = 0;
	int i;

	SKIP_IF_NEEDED();
	for (i = 0; i < 3; i++) {
		assert_int_equal(bpf_scan_from(msg, start, len, &r, 1, NULL), 0);
		assert_int_equal(r.status, MCPF_SCAN_OK);
		assert_int_equal(!!(r.flags & MCPF_SCAN_TRAILING), i < 2);
		assert_int_equal(r.ncalls, 1);
		assert_int_equal(msg[r.calls[0].method_off], '"');
		if (names[i]) {
			assert_string_equal(r.calls[0].name, names[i]);
			assert_memory_equal(msg + r.calls[0].method_off, "\"tools/call\"", 12);
		} else {
			assert_true(r.flags & MCPF_SCAN_BATCH);
			assert_string_equal(r.calls[0].method, "notifications/initialized");
		}
		/* the userspace build agrees */
		memcpy(ubuf.data, msg, len);
		mcp_scan_from(&ubuf, start, len, &ures);
		assert_true(same_result(&r, &ures));
		start = r.end;
	}
	assert_int_equal(start, len - 1);
	/* past the last one: only a newline, more may come */
	assert_int_equal(bpf_scan_from(msg, start, len, &r, 1, NULL), 0);
	assert_int_equal(r.status, MCPF_SCAN_INCOMPLETE);
}

/* Bounds the corpus files cannot carry easily: 64 KiB, depth, batch size, field lengths. */
static void test_bounds(void **state)
{
	struct mcpf_scan_result r;
	char *m, *p;
	size_t len, i;

	SKIP_IF_NEEDED();
	/* a 60 KB call is read; the same call grown past the buffer is not */
	m = sized_call(60000, &len);
	assert_int_equal(bpf_scan(m, len, &r, 1, NULL), 0);
	assert_int_equal(r.status, MCPF_SCAN_OK);
	assert_string_equal(r.calls[0].name, "echo");
	free(m);
	m = sized_call(MCPF_SCAN_BUF_MAX + 100, &len);
	assert_int_equal(bpf_scan(m, len, &r, 1, NULL), 0);
	assert_int_equal(r.status, MCPF_SCAN_UNPARSED);
	/* exactly MCPF_SCAN_BUF_MAX bytes: whole, so OK */
	free(m);
	m = sized_call(MCPF_SCAN_BUF_MAX, &len);
	assert_int_equal(len, MCPF_SCAN_BUF_MAX);
	assert_int_equal(bpf_scan(m, len, &r, 1, NULL), 0);
	assert_int_equal(r.status, MCPF_SCAN_OK);
	/* its first MCPF_SCAN_BUF_MAX - 1 bytes: more may come */
	assert_int_equal(bpf_scan(m, len - 1, &r, 1, NULL), 0);
	assert_int_equal(r.status, MCPF_SCAN_INCOMPLETE);
	free(m);

	/* nesting: 127 arrays inside the message object is depth 128, one more is too deep */
	for (i = 0; i < 2; i++) {
		size_t d = 127 + i, k;

		m = malloc(64 + 2 * d);
		assert_non_null(m);
		p = m + sprintf(m, "{\"method\":\"ping\",\"x\":");
		for (k = 0; k < d; k++)
			*p++ = '[';
		for (k = 0; k < d; k++)
			*p++ = ']';
		p += sprintf(p, "}");
		assert_int_equal(bpf_scan(m, p - m, &r, 1, NULL), 0);
		assert_int_equal(r.status, i ? MCPF_SCAN_UNPARSED : MCPF_SCAN_OK);
		free(m);
	}

	/* a batch of MCPF_SCAN_MAX_CALLS calls is read, one more is not */
	for (i = 0; i < 2; i++) {
		size_t count = MCPF_SCAN_MAX_CALLS + i, k;

		m = malloc(64 * count + 8);
		assert_non_null(m);
		p = m;
		*p++ = '[';
		for (k = 0; k < count; k++)
			p += sprintf(p,
				     "%s{\"id\":%zu,\"method\":\"tools/call\",\"params\":"
				     "{\"name\":\"t%zu\"}}",
				     k ? "," : "", k, k);
		*p++ = ']';
		assert_int_equal(bpf_scan(m, p - m, &r, 1, NULL), 0);
		assert_int_equal(r.status, i ? MCPF_SCAN_UNPARSED : MCPF_SCAN_OK);
		if (!i) {
			assert_int_equal(r.ncalls, MCPF_SCAN_MAX_CALLS);
			assert_string_equal(r.calls[MCPF_SCAN_MAX_CALLS - 1].name, "t7");
		}
		free(m);
	}

	/* field lengths: the longest that fit, and one byte more */
	for (i = 0; i < 2; i++) {
		char meth[MCPF_METHOD_MAX + 1], name[MCPF_NAME_MAX + 1], id[MCPF_ID_MAX + 1];
		char msg[512];

		memset(meth, 'm', sizeof(meth));
		meth[MCPF_METHOD_MAX - 1 + i] = 0;
		memset(name, 'n', sizeof(name));
		name[MCPF_NAME_MAX - 1 + i] = 0;
		memset(id, '7', sizeof(id));
		id[MCPF_ID_MAX - 1 + i] = 0;
		len = snprintf(msg, sizeof(msg), "{\"method\":\"%s\",\"id\":1}", meth);
		assert_int_equal(bpf_scan(msg, len, &r, 1, NULL), 0);
		assert_int_equal(r.status, i ? MCPF_SCAN_UNPARSED : MCPF_SCAN_OK);
		len = snprintf(msg, sizeof(msg),
			       "{\"method\":\"tools/call\",\"params\":{\"name\":\"%s\"}}", name);
		assert_int_equal(bpf_scan(msg, len, &r, 1, NULL), 0);
		assert_int_equal(r.status, i ? MCPF_SCAN_UNPARSED : MCPF_SCAN_OK);
		/* a long name outside tools/call is not needed: read, without the name */
		len = snprintf(msg, sizeof(msg),
			       "{\"method\":\"prompts/get\",\"params\":{\"name\":\"%s\"}}", name);
		assert_int_equal(bpf_scan(msg, len, &r, 1, NULL), 0);
		assert_int_equal(r.status, MCPF_SCAN_OK);
		assert_int_equal(!!(r.calls[0].flags & MCPF_CALL_HAS_NAME), !i);
		len = snprintf(msg, sizeof(msg), "{\"method\":\"ping\",\"id\":%s}", id);
		assert_int_equal(bpf_scan(msg, len, &r, 1, NULL), 0);
		assert_int_equal(r.status, i ? MCPF_SCAN_UNPARSED : MCPF_SCAN_OK);
	}
}

/*
 * Inputs the fuzzer found interesting (build/fuzz/corpus, when `make fuzz` or the short run made
 * one): the kernel's result must be the userspace build's, byte for byte.
 */
static void test_fuzz_corpus_replay(void **state)
{
	char dir[PATH_MAX * 2], path[PATH_MAX * 3], why[256];
	struct mcpf_scan_result kres;
	struct dirent *d;
	int count = 0, failed = 0;
	size_t len;
	char *msg;
	DIR *dh;

	SKIP_IF_NEEDED();
	snprintf(dir, sizeof(dir), "%s/../../../build/fuzz/corpus", env.dir);
	dh = opendir(dir);
	if (!dh) {
		printf("no fuzz corpus at %s (run tests/fuzz/run.sh): nothing to replay\n", dir);
		skip();
	}
	while ((d = readdir(dh)) && count < 3000) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		msg = read_file(path, &len);
		if (!msg)
			continue;
		count++;
		assert_int_equal(bpf_scan(msg, len, &kres, 1, NULL), 0);
		user_scan(msg, len, &ures);
		if (!same_result(&kres, &ures)) {
			fprintf(stderr, "FAIL %s: kernel and userspace builds differ\n", path);
			failed++;
		} else if (scan_ref__check(msg, len, &kres, why, sizeof(why))) {
			fprintf(stderr, "FAIL %s: %s\n", path, why);
			failed++;
		}
		free(msg);
	}
	closedir(dh);
	printf("fuzz corpus: %d inputs replayed through the kernel, %d failed\n", count, failed);
	assert_int_equal(failed, 0);
}

/* Speed, through the test run's own clock (repeat), and what the verifier had to walk. */
static void test_speed(void **state)
{
	static const size_t sizes[] = { 200, 2000, 20000 };
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info), dur = 0;
	struct mcpf_scan_result r;
	size_t len, i;
	char *m;

	SKIP_IF_NEEDED();
	assert_int_equal(bpf_obj_get_info_by_fd(env.prog_fd[0], &info, &info_len), 0);
	printf("scan_test_xdp: %u instructions verified, %u xlated bytes\n", info.verified_insns,
	       info.xlated_prog_len);
	memset(&info, 0, sizeof(info));
	assert_int_equal(bpf_obj_get_info_by_fd(env.prog_fd[1], &info, &info_len), 0);
	printf("scan_test_xdp with MCP_SCAN_GLOBAL_STEP: %u instructions verified\n",
	       info.verified_insns);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		m = sized_call(sizes[i], &len);
		assert_int_equal(bpf_scan(m, len, &r, 2000, &dur), 0);
		assert_int_equal(r.status, MCPF_SCAN_OK);
		printf("scan %6zu B: %6u ns per message, %5.0f ns per KB\n", len, dur,
		       dur * 1024.0 / len);
		free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_packed),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_fuzz_corpus_replay),
		cmocka_unit_test(test_speed),
	};
	int rc = cmocka_run_group_tests_name("scan", tests, group_setup, group_teardown);

	if (env.skip[0])
		printf("skipped: %s\n", env.skip);
	return rc;
}
