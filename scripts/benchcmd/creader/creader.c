/*
 * creader: the benchmark's plain C NFQUEUE reader, the fastest peer of the
 * mechanism. libnetfilter_queue, its one thread blocking in recv(2), the
 * first 128 bytes of each packet copied, one NF_ACCEPT verdict per packet,
 * nothing else. Receive buffer, queue length and flags match the Go
 * readers (8 MiB, 4096, GSO, no ENOBUFS). SIGTERM or SIGINT ends it; it
 * prints the packets it accepted.
 *
 * With -ctevents a second thread follows the conntrack table as nfqfw
 * does: a netlink socket joined to the update and destroy event groups
 * (8 MiB receive buffer), blocking in recv(2), every event read and
 * dropped. It prices what listening alone costs: the kernel builds and
 * queues an event only for groups somebody listens to. With -ctpoll MS
 * the thread sleeps MS milliseconds between reads of all waiting events
 * instead, so that no event wakes it.
 *
 *   creader [-queue N] [-ctevents [-ctpoll MS]]
 *
 * scripts/bench builds it: gcc -O2 creader.c $(pkg-config --libs libnetfilter_queue)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
#include <linux/netfilter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

static volatile sig_atomic_t stopping;
static unsigned long long packets;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static unsigned long long ct_bytes, ct_reads;
static int ct_poll_ms;

/* follow_conntrack reads conntrack update and destroy events until the
 * process ends (NFNLGRP_CONNTRACK_UPDATE and _DESTROY, groups 2 and 3). */
static void *follow_conntrack(void *arg)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	int size = 8 << 20;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = (1 << 1) | (1 << 2)};
	static char buf[65536];
	(void)arg;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "creader: conntrack events: %s\n", strerror(errno));
		exit(1);
	}
	for (;;) {
		if (ct_poll_ms > 0)
			usleep((useconds_t)ct_poll_ms * 1000);
		ssize_t n;
		while ((n = recv(fd, buf, sizeof buf, ct_poll_ms > 0 ? MSG_DONTWAIT : 0)) > 0) {
			ct_bytes += (unsigned long long)n;
			ct_reads++;
		}
	}
	return NULL;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *m, struct nfq_data *d, void *data)
{
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(d);
	(void)m; (void)data;
	if (!ph)
		return 0;
	packets++;
	return nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL);
}

static void die(const char *what)
{
	fprintf(stderr, "creader: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	unsigned queue = 0;
	int ctevents = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-queue") == 0 && i + 1 < argc)
			queue = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "-ctevents") == 0)
			ctevents = 1;
		else if (strcmp(argv[i], "-ctpoll") == 0 && i + 1 < argc)
			ct_poll_ms = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: creader [-queue N] [-ctevents [-ctpoll MS]]\n");
			return 2;
		}
	}
	/* No SA_RESTART: a signal makes the blocked recv return EINTR. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	struct nfq_handle *h = nfq_open();
	if (!h)
		die("nfq_open");
	struct nfq_q_handle *qh = nfq_create_queue(h, queue, on_packet, NULL);
	if (!qh)
		die("bind queue");
	if (nfq_set_mode(qh, NFQNL_COPY_PACKET, 128) < 0)
		die("copy mode");
	if (nfq_set_queue_maxlen(qh, 4096) < 0)
		die("queue length");
	if (nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0)
		die("queue flags");
	int fd = nfq_fd(h), one = 1;
	nfnl_rcvbufsiz(nfq_nfnlh(h), 8 << 20);
	setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

	pthread_t ct;
	if (ctevents && pthread_create(&ct, NULL, follow_conntrack, NULL) != 0)
		die("conntrack thread");

	char buf[65536] __attribute__((aligned));
	while (!stopping) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n >= 0)
			nfq_handle_packet(h, buf, (int)n);
		else if (errno != EINTR && errno != ENOBUFS)
			die("recv");
	}
	nfq_destroy_queue(qh);
	nfq_close(h);
	printf("packets %llu\n", packets);
	if (ctevents)
		printf("conntrack reads %llu bytes %llu\n", ct_reads, ct_bytes);
	return 0;
}
