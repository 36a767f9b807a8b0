/*
 * creader: the benchmark's plain C NFQUEUE reader, the fastest peer of the
 * mechanism. libnetfilter_queue, its one thread blocking in recv(2), the
 * first 128 bytes of each packet copied, one NF_ACCEPT verdict per packet,
 * nothing else. Receive buffer, queue length and flags match the Go
 * readers (8 MiB, 4096, GSO, no ENOBUFS). SIGTERM or SIGINT ends it; it
 * prints the packets it accepted.
 *
 *   creader [-queue N]
 *
 * scripts/bench builds it: gcc -O2 creader.c $(pkg-config --libs libnetfilter_queue)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
#include <linux/netfilter.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif

static volatile sig_atomic_t stopping;
static unsigned long long packets;

static void on_signal(int sig) { (void)sig; stopping = 1; }

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
	if (argc == 3 && strcmp(argv[1], "-queue") == 0)
		queue = (unsigned)atoi(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: creader [-queue N]\n");
		return 2;
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
	return 0;
}
