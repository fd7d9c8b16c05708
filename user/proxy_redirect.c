// SPDX-License-Identifier: Apache-2.0
/* proxy_redirect: the cgroup connect/getpeername programs of `mcpfence proxy --redirect-port`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cgroup.h"
#include "log.h"
#include "proxy_redirect.h"
#include "redirect.skel.h"

#define NPROGS 4

struct proxy_redirect {
	struct redirect_bpf *skel;
	struct bpf_link *links[NPROGS];
	char dir[PATH_MAX];
};

static const char *const pin_names[NPROGS] = { "link_connect4", "link_connect6", "link_peer4",
					       "link_peer6" };

static void set_addr(const struct sockaddr_storage *sa, volatile __u32 *ip4, volatile __u32 *ip6,
		     volatile __u16 *port)
{
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		*ip4 = s->sin_addr.s_addr;
		*port = ntohs(s->sin_port);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		*ip4 = 0;
		memcpy((void *)ip6, &s->sin6_addr, 16);
		*port = ntohs(s->sin6_port);
	}
}

int proxy_redirect__start(const struct sockaddr_storage *up, const struct sockaddr_storage *px,
			  const char *cgroup, struct proxy_redirect **out)
{
	struct bpf_program *progs[NPROGS];
	struct proxy_redirect *r = calloc(1, sizeof(*r));
	char root[PATH_MAX], why[200], old[PATH_MAX + 32];
	int cg = -1, err;
	__u16 up_port;

	if (!r)
		return -ENOMEM;
	r->skel = redirect_bpf__open();
	if (!r->skel) {
		err = -errno;
		log_err("proxy: --redirect-port: cannot open its BPF programs: %s", strerror(-err));
		goto fail;
	}
	r->skel->rodata->proxy_tgid = (__u32)getpid();
	set_addr(up, &r->skel->rodata->up_ip4, r->skel->rodata->up_ip6, &r->skel->rodata->up_port);
	set_addr(px, &r->skel->rodata->px_ip4, r->skel->rodata->px_ip6, &r->skel->rodata->px_port);
	up_port = r->skel->rodata->up_port;
	err = redirect_bpf__load(r->skel);
	if (err) {
		log_err("proxy: --redirect-port: the kernel refused its programs: %s "
			"(cgroup/connect and getpeername programs, socket storage: Linux 5.8)",
			strerror(-err));
		goto fail;
	}
	if (!cgroup) {
		if (cgroup__v2_root(root, sizeof(root), why, sizeof(why))) {
			log_err("proxy: --redirect-port: %s", why);
			err = -ENOENT;
			goto fail;
		}
		cgroup = root;
	}
	cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		err = -errno;
		log_err("proxy: --redirect-port: %s: %s", cgroup, strerror(-err));
		goto fail;
	}
	snprintf(r->dir, sizeof(r->dir), "%s/%u", PROXY_REDIRECT_PIN_DIR, up_port);
	if ((mkdir(PROXY_REDIRECT_PIN_DIR, 0700) && errno != EEXIST) ||
	    (mkdir(r->dir, 0700) && errno != EEXIST)) {
		err = -errno;
		log_err("proxy: --redirect-port: %s: %s", r->dir, strerror(-err));
		goto fail;
	}
	progs[0] = r->skel->progs.redirect_connect4;
	progs[1] = r->skel->progs.redirect_connect6;
	progs[2] = r->skel->progs.redirect_peer4;
	progs[3] = r->skel->progs.redirect_peer6;
	/* ours first, then away with a dead proxy's: no moment without a redirect */
	for (int i = 0; i < NPROGS; i++) {
		r->links[i] = bpf_program__attach_cgroup(progs[i], cg);
		if (!r->links[i]) {
			err = -errno;
			log_err("proxy: --redirect-port: attach %s to %s: %s",
				bpf_program__name(progs[i]), cgroup, strerror(-err));
			goto fail;
		}
	}
	for (int i = 0; i < NPROGS; i++) {
		snprintf(old, sizeof(old), "%s/%s", r->dir, pin_names[i]);
		if (!unlink(old) && !i)
			log_warn("proxy: --redirect-port %u: replaced the redirect a proxy before "
				 "left in %s",
				 up_port, r->dir);
		err = bpf_link__pin(r->links[i], old);
		if (err) {
			log_err("proxy: --redirect-port: pin %s: %s", old, strerror(-err));
			goto fail;
		}
	}
	close(cg);
	*out = r;
	return 0;
fail:
	if (cg >= 0)
		close(cg);
	proxy_redirect__stop(r);
	return err;
}

void proxy_redirect__stop(struct proxy_redirect *r)
{
	if (!r)
		return;
	for (int i = 0; i < NPROGS; i++) {
		if (!r->links[i])
			continue;
		bpf_link__unpin(r->links[i]);
		bpf_link__destroy(r->links[i]);
	}
	if (r->dir[0])
		rmdir(r->dir);
	redirect_bpf__destroy(r->skel);
	free(r);
}

void proxy_redirect__counts(struct proxy_redirect *r, unsigned long long out[3])
{
	int n = libbpf_num_possible_cpus(), fd = bpf_map__fd(r->skel->maps.redirect_counts);
	__u64 *v = calloc(n > 0 ? n : 1, sizeof(*v));

	for (__u32 k = 0; k < 3; k++) {
		out[k] = 0;
		if (v && !bpf_map_lookup_elem(fd, &k, v))
			for (int c = 0; c < n; c++)
				out[k] += v[c];
	}
	free(v);
}
