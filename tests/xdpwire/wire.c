//go:build ignore

// The client's end of the on-the-wire XDP benchmark (package xdpwire), attached to the client's
// veth end. Each reply that arrives from the server is counted (and, when asked, copied to a ring
// buffer for a test to parse), then rewritten in place into the next reserved client's request
// and sent back with XDP_TX. Seeded with a few requests, requests and replies ping-pong between
// the two ends' XDP programs at kernel speed, with a fixed number in flight, until the budget
// (set to 0 to stop) is spent. The next client is chosen by this CPU's count of sent requests.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

#define FRAME_MAX 1024
#define CHADDR_OFF (14 + 20 + 8 + 28) /* Ethernet, IPv4 without options, UDP, BOOTP up to chaddr */

struct gen_config {
	__u32 len;       /* template length */
	__u32 clients;   /* entries of the clients map in use */
	__u32 reqip_off; /* offset of option 50's address in the template, 0: none */
	__u32 _pad;
	__u8 data[FRAME_MAX];
};

struct client {
	__u8 mac[6];
	__u8 _pad[2];
	__u8 ip[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct client);
} clients SEC(".maps");

/* budget: requests the program may still send, over all CPUs; <= 0 stops the loop. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} budget SEC(".maps");

/* Capture records: the frame's length and its first CAPTURE_MAX bytes. */
#define CAPTURE_MAX 1024
struct capture {
	__u32 len;
	__u8 data[CAPTURE_MAX];
};

enum { S_REPLIES, S_SENT, S_CAPTURED, S_CAPTURE_LOST, S_SEND_ERRORS, S_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, S_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* capture_on: non-zero copies every reply into the replies ring. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} capture_on SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} replies SEC(".maps");

static __always_inline void bump(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &k);
	if (v)
		*v += 1;
}

static __always_inline void capture(struct xdp_md *ctx)
{
	__u64 len = (long)ctx->data_end - (long)ctx->data;
	struct capture *c = bpf_ringbuf_reserve(&replies, sizeof(*c), 0);
	if (!c) {
		bump(S_CAPTURE_LOST);
		return;
	}
	if (len > CAPTURE_MAX)
		len = CAPTURE_MAX;
	asm volatile("" : "+r"(len));
	if (len < 1 || len > CAPTURE_MAX || bpf_xdp_load_bytes(ctx, 0, c->data, len)) {
		bpf_ringbuf_discard(c, 0);
		bump(S_CAPTURE_LOST);
		return;
	}
	c->len = len;
	bpf_ringbuf_submit(c, 0);
	bump(S_CAPTURED);
}

/* next_request turns the frame into the next client's request from the template; 0 on success. */
static __always_inline int next_request(struct xdp_md *ctx, struct gen_config *cfg, __u64 n)
{
	__u32 len = cfg->len;
	if (len < CHADDR_OFF + 6 || len > FRAME_MAX || !cfg->clients)
		return -1;
	long have = (long)ctx->data_end - (long)ctx->data;
	if (have != len && bpf_xdp_adjust_tail(ctx, (int)((long)len - have)))
		return -1;
	if (bpf_xdp_store_bytes(ctx, 0, cfg->data, len))
		return -1;
	__u32 i = n % cfg->clients;
	struct client *c = bpf_map_lookup_elem(&clients, &i);
	if (!c)
		return -1;
	if (bpf_xdp_store_bytes(ctx, 6, c->mac, 6) || bpf_xdp_store_bytes(ctx, CHADDR_OFF, c->mac, 6))
		return -1;
	__u32 off = cfg->reqip_off;
	if (off && (off > len - 4 || bpf_xdp_store_bytes(ctx, off, c->ip, 4)))
		return -1;
	return 0;
}

SEC("xdp")
int xdp_client(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	/* A reply: IPv4 without options, UDP from port 67. Anything else goes to the stack. */
	if ((void *)(p + 14 + 20 + 8) > end || p[12] != 0x08 || p[13] != 0x00 || p[14] != 0x45 ||
	    p[23] != 17 || p[34] != 0 || p[35] != 67)
		return XDP_PASS;
	bump(S_REPLIES);
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&capture_on, &zero);
	if (on && *on)
		capture(ctx);
	struct gen_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__s64 *b = bpf_map_lookup_elem(&budget, &zero);
	__u32 k = S_SENT;
	__u64 *sent = bpf_map_lookup_elem(&stats, &k);
	if (!cfg || !b || !sent || __sync_fetch_and_add(b, -1) <= 0)
		return XDP_DROP;
	if (next_request(ctx, cfg, *sent)) {
		bump(S_SEND_ERRORS);
		return XDP_DROP;
	}
	*sent += 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
