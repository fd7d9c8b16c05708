// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_tickets: `mcpfence approve --tool T [--count N] [--for D]` puts N calls of T, good for
 * D, in tcp_tickets, which BPF takes one by one for rules with "action": "approve". Root's alone:
 * a ticket lets calls through for every client of the host.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cmd.h"
#include "feature_probes.h"
#include "kernel.h"
#include "kernel_tickets.h"
#include "log.h"
#include "mcpfence.h"
#include "policy.h"

int kernel__parse_duration(const char *s, uint64_t *seconds)
{
	bool unit;

	return policy__duration_text(s, seconds, &unit);
}

int kernel__approve_ticket(int argc, char **argv, const char *usage)
{
	static const struct option opts[] = {
		{ "tool", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "for", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char key[MCPF_NAME_MAX] = {};
	const char *tool = NULL;
	struct mcpf_ticket t = { .count = 1 }, old;
	uint64_t dur = 600;
	struct timespec now;
	int c, fd, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tool = optarg;
			break;
		case 'n': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 1000000) {
				log_err("--count %s: not a count (1-1000000)", optarg);
				return EXIT_USAGE;
			}
			t.count = v;
			break;
		}
		case 'f':
			if (kernel__parse_duration(optarg, &dur)) {
				log_err("--for %s: not a duration (30s, 10m, 2h, 1d)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!tool || optind < argc || !*tool || strlen(tool) >= MCPF_NAME_MAX) {
		log_err("approve needs --tool NAME (shorter than %d bytes)", MCPF_NAME_MAX);
		return EXIT_USAGE;
	}
	/*
	 * A ticket lets calls of T through for every client on the host, the agent's among
	 * them: only root gives one. The pinned map is root's too; this says so plainly.
	 */
	if (geteuid() != 0) {
		log_err("approve --tool: kernel-plane tickets are given by root only (this is uid "
			"%u); a waiting gateway call is approved by its ID (mcpfence approvals)",
			(unsigned)geteuid());
		return 1;
	}
	memcpy(key, tool, strlen(tool));
	features__mount();
	fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_tickets");
	if (fd < 0) {
		log_err("%s/tcp_tickets: %s: nothing attached (mcpfence attach)", MCPF_PIN_DIR,
			strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_BOOTTIME, &now);
	t.expires_ns = ((uint64_t)now.tv_sec + dur) * 1000000000ULL + now.tv_nsec;
	if (!bpf_map_lookup_elem(fd, key, &old) && old.count > 0 &&
	    (!old.expires_ns || old.expires_ns > (uint64_t)now.tv_sec * 1000000000ULL))
		t.count += old.count;
	if (bpf_map_update_elem(fd, key, &t, BPF_ANY)) {
		log_err("tcp_tickets: update: %s", strerror(errno));
		goto out;
	}
	printf("ticket: %lld call%s of %s within %" PRIu64 "s\n", (long long)t.count,
	       t.count == 1 ? "" : "s", tool, dur);
	ret = 0;
out:
	close(fd);
	return ret;
}
