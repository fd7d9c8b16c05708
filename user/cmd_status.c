// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence status [--json]`: the sessions the kernel attachment enforces on, as attach last
 * wrote them (STATUS_PATH), and whether that attach still runs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "cmd.h"
#include "feature_probes.h"
#include "kernel.h"
#include "log.h"
#include "status.h"

static const char usage[] = "usage: mcpfence status [--json]\n"
			    "  --json            print it as one JSON object\n"
			    "  -h, --help        print this help\n";

int cmd_status(int argc, char **argv)
{
	enum kernel_attachment a;
	json_error_t jerr;
	bool json = false;
	json_t *doc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (cmd_is_help(argv[i])) {
			fputs(usage, stdout);
			return 0;
		} else {
			log_err("status: unknown option '%s'", argv[i]);
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	features__mount();
	a = kernel__attachment();
	if (a == KERNEL_ATTACHED_NONE) {
		log_err("status: nothing attached (mcpfence attach)");
		return 1;
	}
	doc = json_load_file(STATUS_PATH, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc)) {
		log_err("status: %s: %s%s", STATUS_PATH, doc ? "not a JSON object" : jerr.text,
			a == KERNEL_ATTACHED_LIVE ? "" : " (attach is gone: run mcpfence detach)");
		json_decref(doc);
		return 1;
	}
	status__print(stdout, doc, a == KERNEL_ATTACHED_LIVE ? "live" : "stale", json);
	json_decref(doc);
	return 0;
}
