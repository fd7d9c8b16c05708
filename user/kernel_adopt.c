// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_adopt: TCP connections that were established before attach: sock_ops never saw them,
 * so they are found in /proc (the sockets of watched ports in /proc/net/tcp{,6}, then the
 * processes that hold them), taken with pidfd_getfd and put in tcp_socks like new ones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <bpf/bpf.h>
#include "kernel_adopt.h"
#include "log.h"
#include "mcpfence.h"

struct inode_set {
	uint64_t *v;
	size_t n, cap;
};

static bool watched(const uint16_t *ports, unsigned nports, unsigned port)
{
	for (unsigned i = 0; i < nports; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* Inodes of established TCP sockets with a watched local or remote port, from /proc/net. */
static int inodes_collect(const char *file, const uint16_t *ports, unsigned nports,
			  struct inode_set *set)
{
	char line[512], *p;
	FILE *f = fopen(file, "r");

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st;
		unsigned long long ino;
		char *tok[10];
		int n = 0;

		for (p = strtok(line, " \t\n"); p && n < 10; p = strtok(NULL, " \t\n"))
			tok[n++] = p;
		if (n < 10)
			continue;
		p = strchr(tok[1], ':');
		if (!p || sscanf(p + 1, "%x", &lport) != 1)
			continue;
		p = strchr(tok[2], ':');
		if (!p || sscanf(p + 1, "%x", &rport) != 1 || sscanf(tok[3], "%x", &st) != 1)
			continue;
		if (st != 1 || sscanf(tok[9], "%llu", &ino) != 1 || !ino)
			continue;
		if (!watched(ports, nports, lport) && !watched(ports, nports, rport))
			continue;
		if (set->n == set->cap) {
			uint64_t *nv = realloc(set->v, (set->cap = set->cap ? 2 * set->cap : 64) *
							       sizeof(*nv));

			if (!nv) {
				fclose(f);
				return -ENOMEM;
			}
			set->v = nv;
		}
		set->v[set->n++] = ino;
	}
	fclose(f);
	return 0;
}

static void addr_key(const struct sockaddr_storage *ss, __u32 *out, uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		out[0] = 0;
		out[1] = 0;
		out[2] = htonl(0xffff);
		out[3] = in->sin_addr.s_addr;
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(out, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

/* Put one socket (our copy of another process's fd) in tcp_socks, keyed as sock_ops would. */
static int adopt_one(int map_fd, int fd, const uint16_t *ports, unsigned nports)
{
	struct sockaddr_storage l = {}, r = {};
	socklen_t ll = sizeof(l), rl = sizeof(r);
	struct mcpf_sock_key k = {};
	uint16_t lport, rport;
	__u32 la[4], ra[4];
	__u64 val = fd;

	if (getsockname(fd, (void *)&l, &ll) || getpeername(fd, (void *)&r, &rl))
		return -errno;
	if ((l.ss_family != AF_INET && l.ss_family != AF_INET6) || l.ss_family != r.ss_family)
		return -EAFNOSUPPORT;
	addr_key(&l, la, &lport);
	addr_key(&r, ra, &rport);
	if (watched(ports, nports, rport)) {
		memcpy(k.conn.cli, la, 16);
		memcpy(k.conn.srv, ra, 16);
		k.conn.cport = lport;
		k.conn.sport = rport;
	} else if (watched(ports, nports, lport)) {
		memcpy(k.conn.srv, la, 16);
		memcpy(k.conn.cli, ra, 16);
		k.conn.sport = lport;
		k.conn.cport = rport;
		k.server_side = 1;
	} else {
		return 0;
	}
	if (bpf_map_update_elem(map_fd, &k, &val, BPF_ANY)) {
		int err = -errno;
		__u64 in_map = 0, cookie = 0;
		socklen_t cl = sizeof(cookie);

		/*
		 * EBUSY: the socket has an sk_msg program already. When that is this map's (sock_ops
		 * put it there since the attachment began), it is watched; otherwise another
		 * program holds it, and it is refused like any other.
		 */
		if (err == -EBUSY && !bpf_map_lookup_elem(map_fd, &k, &in_map) &&
		    !getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &cl) && cookie == in_map)
			return 0;
		return err;
	}
	return 1;
}

static void adopt_refused(int unwatched_fd, int any_fd, int copy, int pid, int fd, int err)
{
	unsigned timeout_ms = 1000; /* as bpf/tcp.bpf.c unwatched(): a send fails, not hangs */
	__u32 mark = 1, zero = 0;

	setsockopt(copy, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
	if (bpf_map_update_elem(any_fd, &zero, &mark, BPF_ANY) ||
	    bpf_map_update_elem(unwatched_fd, &copy, &mark, BPF_ANY))
		log_err("pid %d fd %d: a connection of a watched port is neither watched nor "
			"stopped (tcp_unwatched: %s)",
			pid, fd, strerror(errno));
	else
		log_warn("pid %d fd %d: tcp_socks refused a connection of a watched port (%s): "
			 "its packets are dropped",
			 pid, fd, strerror(-err));
}

/*
 * sock_ops sees connections as they are established; those established before the attachment
 * (a keep-alive connection of a running client) are found here, in /proc, taken from their
 * owners with pidfd_getfd and put in tcp_socks. Returns how many were adopted.
 */
int kernel__adopt_existing(int map_fd, int unwatched_fd, int any_fd, const uint16_t *ports,
			   unsigned nports)
{
	struct inode_set set = {};
	struct dirent *pe, *fe;
	DIR *proc, *fds;
	char path[64], link[64];
	int adopted = 0;

	inodes_collect("/proc/net/tcp", ports, nports, &set);
	inodes_collect("/proc/net/tcp6", ports, nports, &set);
	if (!set.n)
		goto out;
	proc = opendir("/proc");
	if (!proc)
		goto out;
	while ((pe = readdir(proc))) {
		int pid = atoi(pe->d_name), pidfd;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		pidfd = -1;
		while ((fe = readdir(fds))) {
			unsigned long long ino;
			ssize_t n;
			int fd = atoi(fe->d_name), copy, r;
			bool hit = false;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (sscanf(link, "socket:[%llu]", &ino) != 1)
				continue;
			for (size_t i = 0; i < set.n && !hit; i++)
				hit = set.v[i] == ino;
			if (!hit)
				continue;
			if (pidfd < 0)
				pidfd = syscall(SYS_pidfd_open, pid, 0);
			if (pidfd < 0)
				break;
			copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
			if (copy < 0) {
				log_debug("pid %d fd %d: pidfd_getfd: %s", pid, fd,
					  strerror(errno));
				continue;
			}
			r = adopt_one(map_fd, copy, ports, nports);
			switch (r) {
			case 1:
				adopted++;
				/* fall through */
			case 0:
			case -EAFNOSUPPORT:
			case -ENOTCONN:
				break;
			default:
				/* tcp_socks refused it: its packets are dropped from now on */
				adopt_refused(unwatched_fd, any_fd, copy, pid, fd, r);
				break;
			}
			close(copy);
		}
		if (pidfd >= 0)
			close(pidfd);
		closedir(fds);
	}
	closedir(proc);
out:
	free(set.v);
	return adopted;
}
