// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence proxy --listen ADDR:PORT --upstream URL [OPTIONS]`: the gateway plane on a
 * Streamable HTTP server (http_proxy__run).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "http_proxy.h"
#include "log.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mcpfence proxy --listen ADDR:PORT --upstream URL [OPTIONS]\n"
		"  -l, --listen ADDR:PORT  where clients connect (127.0.0.1:8080, [::1]:8080)\n"
		"  -u, --upstream URL      the MCP server: http(s)://HOST[:PORT]; requests keep\n"
		"                          their path\n"
		"  -p, --policy P          policy.json to enforce (none: every call is denied)\n"
		"  -a, --audit FILE        audit log, - for stderr (default as for run)\n"
		"  -n, --name NAME         the server's name for grant budgets and the audit log\n"
		"                          (default: the upstream URL)\n"
		"  -H, --allow-host NAME   also answer requests whose Host or Origin names NAME\n"
		"                          (besides localhost, 127.0.0.1, [::1] and the listen\n"
		"                          address); may be given 16 times\n"
		"  --upstream-ca FILE      trust the CAs in FILE for an https upstream (default:\n"
		"                          the system's; certificates are always checked)\n"
		"  -c, --max-conns N       client connections at once (default 1024)\n"
		"  -r, --redirect-port N   (root) send this host's connections to the upstream,\n"
		"                          port N, here, unchanged clients included\n"
		"  --cgroup PATH           with --redirect-port: the cgroup v2 whose processes\n"
		"                          are redirected (default: the host's root)\n"
		"  -v, --verbose           log debug messages\n"
		"  -h, --help              print this help\n");
}

int cmd_proxy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "policy", required_argument, NULL, 'p' },
		{ "audit", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "upstream-ca", required_argument, NULL, 'C' },
		{ "max-conns", required_argument, NULL, 'c' },
		{ "redirect-port", required_argument, NULL, 'r' },
		{ "cgroup", required_argument, NULL, 'G' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct proxy_opts o = {};
	long n;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "l:u:p:a:n:H:c:r:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			o.listen = optarg;
			break;
		case 'u':
			o.upstream = optarg;
			break;
		case 'p':
			o.policy_path = optarg;
			break;
		case 'a':
			o.audit_path = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'H':
			if (o.nallowed == PROXY_MAX_ALLOWED) {
				log_err("proxy: --allow-host: at most %d", PROXY_MAX_ALLOWED);
				return EXIT_USAGE;
			}
			o.allowed[o.nallowed++] = optarg;
			break;
		case 'C':
			o.ca_file = optarg;
			break;
		case 'c':
			if (!cmd_number(optarg, 1, 100000, &n)) {
				log_err("proxy: --max-conns %s: not a number from 1 to 100000",
					optarg);
				return EXIT_USAGE;
			}
			o.max_conns = (unsigned)n;
			break;
		case 'r':
			if (!cmd_number(optarg, 1, 65535, &n)) {
				log_err("proxy: --redirect-port %s: not a port (1 to 65535)",
					optarg);
				return EXIT_USAGE;
			}
			o.redirect_port = (unsigned)n;
			break;
		case 'G':
			o.cgroup = optarg;
			break;
		case 'v':
			log_level = LOG_LVL_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!o.listen || !o.upstream || optind < argc) {
		log_err("proxy: %s", optind < argc ? "unexpected arguments" :
				     !o.listen	   ? "--listen is required" :
						     "--upstream is required");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o.cgroup && !o.redirect_port) {
		log_err("proxy: --cgroup goes with --redirect-port");
		return EXIT_USAGE;
	}
	if (o.redirect_port && geteuid()) {
		log_err("proxy: --redirect-port needs root (BPF programs on a cgroup)");
		return EXIT_USAGE;
	}
	return http_proxy__run(&o);
}
