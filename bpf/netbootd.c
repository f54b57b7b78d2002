//go:build ignore

// netbootd's XDP fast path: DHCPv4 for reserved MACs, answered in place with XDP_TX.
//
// It answers only what it fully understands: a DISCOVER or a REQUEST for this server and the
// reserved address, from a plain DHCP client or from firmware PXE or UEFI HTTP boot (vendor class
// PXEClient or HTTPClient) for an architecture the control plane pre-rendered boot parameters
// for. Everything else (unknown MACs, iPXE clients, relayed requests with option 82, NAK cases, RELEASE, DECLINE,
// INFORM, odd or malformed packets) is XDP_PASS to the Go control plane, which answers with the
// same renderer.
//
// The reply's options come pre-rendered per reservation by the control plane (the "area": option
// 53, the options, END and padding, plus its checksum contribution), and per reservation and
// architecture for PXE firmware (the same options plus 60, 43, 66 and 67, with next-server and
// the boot file; for HTTP boot 60 "HTTPClient" and a URL in 67 and the file field), so the program only copies bytes, fixes the headers and computes the fixed
// part of the checksums.
//
// Client classes are applied by the control plane when it renders those areas (per MAC prefix,
// per architecture, and ARCH_PLAIN for a plain client a class gives a boot file); requests a
// class could match on what this program does not read go up (enum res_flags, C_PASS_CLASS).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AREA_MAX 308 /* BOOTP 240 + 308 = 548 = 576 - IP - UDP: every client accepts it */
#define MAX_OPTION_STEPS 64
#define PRL_MAX 64
#define CID_MAX 64 /* longest option 61 echoed here (udhcpc 7, RFC 4361 IAID+DUID ~20); longer: the control plane */

struct res_key {
	__u8 mac[6];
	__u16 pad;
};

struct res_val {
	__u32 yiaddr;      /* network order */
	__u32 net, mask;   /* the reservation's subnet, network order: a relay's giaddr must be in it */
	__u32 sum_offer;   /* ones-complement sum of the area with type OFFER, as csum_diff computes it */
	__u32 sum_ack;     /* ... with type ACK */
	__u16 area_len;
	__u16 flags;       /* enum res_flags */
	__u16 area_end;    /* offset of END in area: where an echoed option 61 goes */
	__u8 punt_prl[32]; /* option codes that, asked for in option 55, need the control plane */
	__u8 area[AREA_MAX];
};

/* Requests of a reservation that a client class could match on what this program does not
 * evaluate (the control plane renders the flags, FlagClass… in reservations.go). */
enum res_flags {
	F_CLASS_VENDOR = 1,    /* a class looks into option 60 beyond "PXEClient": requests with 60 go up */
	F_CLASS_ARCH = 2,      /* a class matches on option 93 for any client: plain requests with 93 go up */
	F_CLASS_CLIENT_ID = 4, /* a class matches on option 61: requests with 61 go up */
};

/* The boot_key arch of a plain DHCP client's reply when a client class gives it a boot file. */
#define ARCH_PLAIN 0xffff
/* Set in the boot_key arch of a UEFI HTTP boot client (vendor class HTTPClient): its option 93
 * | ARCH_HTTP. No architecture on the wire has this bit (a request with it goes up). */
#define ARCH_HTTP 0x8000

/* Boot parameters for firmware PXE (or HTTP boot, ARCH_HTTP) of one reserved MAC and one
 * architecture (option 93). */
struct boot_key {
	__u8 mac[6];
	__u16 arch; /* host order; 0 (BIOS) when the request has no option 93 */
};

struct boot_val {
	__u32 siaddr;    /* next-server, network order */
	__u32 sum_offer; /* as in res_val, for this area */
	__u32 sum_ack;
	__u16 area_len;
	__u16 flags;
	__u16 area_end;  /* as in res_val */
	__u8 file[128];  /* the BOOTP file field: the boot file name, NUL-padded */
	__u8 area[AREA_MAX];
};

struct fp_config {
	__u32 server_ip; /* network order */
	__u8 mac[6];     /* the interface's MAC: source of every reply */
	__u16 enabled;
	/* Storm protection for what goes to the control plane; 0 turns each off. */
	__u64 dup_window_ns;   /* a DISCOVER repeating its MAC and xid within this is dropped */
	__u64 source_rate;     /* tokens/s per Ethernet source, for requests from unknown MACs */
	__u64 source_burst;
	__u64 stranger_rate;   /* tokens/s for all unknown MACs together, per CPU */
	__u64 stranger_burst;
};

/* A token bucket: tokens scaled by 1e9 so that refills need no division. */
struct bucket {
	__u64 nanotokens;
	__u64 last_ns;
};

#define NS_PER_SEC 1000000000ULL

/* The program's counters. Their names are the Prometheus labels of netbootd_xdp_packets_total
 * and the lines of `netbootd status`: lower-case, without C_ (bpf2go -type counter, stringer). */
enum counter {
	C_RECEIVED,              /* IPv4 UDP to port 67 seen */
	C_OFFER,
	C_ACK,
	C_PASS_UNKNOWN_MAC,      /* MAC not reserved */
	C_PASS_NETBOOT,          /* PXE, HTTP boot or iPXE client: boot files come from the control plane */
	C_PASS_RELAY,            /* option 82, or a giaddr outside the reservation's subnet */
	C_PASS_TYPE,             /* RELEASE, DECLINE, INFORM, ... */
	C_PASS_NOT_OURS,         /* REQUEST for another server or another address (the control plane NAKs or ignores) */
	C_PASS_REQUESTED_OPTION, /* option 55 asks for an option only the control plane renders */
	C_PASS_SIZE,             /* reply does not fit the frame */
	C_PASS_IP_OPTIONS,       /* IP options (IHL > 5): the control plane answers, after admission */
	C_MALFORMED,
	C_EVENTS_LOST,           /* answers not reported to the daemon: the event ring was full */
	C_PXE,                   /* answers that carried boot parameters for firmware PXE or HTTP boot */
	C_DROP_DUPLICATE,        /* a DISCOVER repeated (same MAC and xid) within the window: dropped */
	C_DROP_SOURCE_RATE,      /* unknown MAC over its Ethernet source's rate: dropped */
	C_DROP_STRANGER_RATE,    /* unknown MAC over the rate for all unknown MACs: dropped */
	C_DROP_UNTRUSTED_RELAY,  /* giaddr set by a host that is not a configured relay: dropped */
	C_DROP_FRAGMENT,         /* first fragment of a datagram to port 67 (no DHCP client fragments): dropped */
	C_PASS_OPTIONS,          /* option overload (52) or option 61 more than once: options this program does not read */
	C_PASS_CLASS,            /* a client class of the reservation may match on what only the control plane reads */
	C_MAX,
};
/* Keeps enum counter in the BTF, where bpf2go finds it for the Go side. */
const enum counter *unused_counter __attribute__((unused));

/* One answered request, for the daemon's per-machine history. */
struct event {
	__u64 time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u32 xid;     /* as on the wire */
	__u32 yiaddr;  /* network order */
	__u8 mac[6];
	__u8 msg_type; /* the request's: 1 DISCOVER, 3 REQUEST */
	__u8 reply;    /* 2 OFFER, 5 ACK */
	__u16 arch;    /* option 93 of a PXE request, | ARCH_HTTP for HTTP boot */
	__u8 pxe;      /* 1: answered with boot parameters for firmware PXE or HTTP boot */
	__u8 pad[5];
};
/* Keeps struct event in the BTF, where bpf2go finds it for the Go side. */
const struct event *unused_event __attribute__((unused));

/* Not preallocated: memory follows the reservations there are, and a reload or the cluster's
 * inventory can grow them to a million without a bigger map (which would start empty). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct res_key);
	__type(value, struct res_val);
} reservations SEC(".maps");

/* Not preallocated: most reservations have one or two architectures, not every possible one. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 21);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct boot_key);
	__type(value, struct boot_val);
} boot_params SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_config);
} config SEC(".maps");

/* MACs holding a dynamic lease (the control plane keeps it filled): never rate-limited. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct res_key);
	__type(value, __u8);
} known SEC(".maps");

/* Last DISCOVER seen per MAC and xid, for dropping duplicates. */
struct dup_key {
	__u8 mac[6];
	__u16 pad;
	__u32 xid;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dup_key);
	__type(value, __u64);
} recent SEC(".maps");

/* Token buckets per Ethernet source of unknown MACs; LRU, so a flood of sources evicts itself. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct res_key);
	__type(value, struct bucket);
} sources SEC(".maps");

/* The bucket for all unknown MACs, one per CPU (the loader divides the rate among CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} strangers SEC(".maps");

/* Configured relays (the IP source of relayed requests): {addr, net} for each subnet a relay
 * serves, and {addr, 0} for "a relay of some subnet". Only these may set giaddr. */
struct relay_key {
	__u32 addr; /* network order */
	__u32 net;  /* the subnet's network address, network order; 0: any */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct relay_key);
	__type(value, __u8);
} relays SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18); /* 256 KiB: ~8,000 answers between two reads */
} events SEC(".maps");

struct bootp {
	__u8 op, htype, hlen, hops;
	__u32 xid;
	__u16 secs, flags;
	__u32 ciaddr, yiaddr, siaddr, giaddr;
	__u8 chaddr[16];
	__u8 sname[64];
	__u8 file[128];
	__u32 cookie;
} __attribute__((packed));

struct vlan_hdr {
	__u16 tci;
	__u16 proto;
};

/* Slots of the options the program reads; every other code maps to slot 0 (ignored). */
enum { S_NONE, S_TYPE, S_REQIP, S_SERVER, S_PRL, S_VENDOR, S_USER, S_AGENT, S_IPXE, S_ARCH, S_CLIENTID, S_OVERLOAD, S_MAX };

static __always_inline __u32 slot_of(__u8 code)
{
	switch (code) {
	case 53: return S_TYPE;
	case 50: return S_REQIP;
	case 54: return S_SERVER;
	case 55: return S_PRL;
	case 60: return S_VENDOR;
	case 77: return S_USER;
	case 82: return S_AGENT;
	case 175: return S_IPXE;
	case 93: return S_ARCH;
	case 61: return S_CLIENTID;
	case 52: return S_OVERLOAD;
	}
	return S_NONE;
}

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

static __always_inline int pass(__u32 c)
{
	count(c);
	return XDP_PASS;
}

enum { V_PLAIN, V_PXE, V_HTTP };

/* netboot_vendor: option 60 starting with "PXEClient" is firmware PXE, with "HTTPClient" UEFI
 * HTTP boot; other vendor classes ("udhcp 1.35.0", "MSFT 5.0", ...) are plain DHCP clients. */
static __always_inline int netboot_vendor(__u8 *v, __u8 l, void *end)
{
	if (l < 9 || (void *)(v + 10) > end)
		return V_PLAIN;
	if (v[0] == 'P' && v[1] == 'X' && v[2] == 'E' && v[3] == 'C' && v[4] == 'l' && v[5] == 'i' &&
	    v[6] == 'e' && v[7] == 'n' && v[8] == 't')
		return V_PXE;
	if (l >= 10 && v[0] == 'H' && v[1] == 'T' && v[2] == 'T' && v[3] == 'P' && v[4] == 'C' &&
	    v[5] == 'l' && v[6] == 'i' && v[7] == 'e' && v[8] == 'n' && v[9] == 't')
		return V_HTTP;
	return V_PLAIN;
}

#define DHCP_DISCOVER 1
#define DHCP_OFFER 2
#define DHCP_REQUEST 3
#define DHCP_ACK 5
#define BOOTP_OPTIONS 240 /* offset of the options in the BOOTP payload */

/* take spends one token from b, refilled at rate per second up to burst; it reports whether
 * there was one. Updates race across CPUs on a shared bucket: an approximate limit is enough. */
static __always_inline int take(struct bucket *b, __u64 now, __u64 rate, __u64 burst)
{
	__u64 cap = burst * NS_PER_SEC;
	__u64 elapsed = now - b->last_ns;
	if (elapsed > NS_PER_SEC * 60)
		elapsed = NS_PER_SEC * 60; /* bounds the product below */
	__u64 t = b->nanotokens + elapsed * rate;
	if (t > cap)
		t = cap;
	b->last_ns = now;
	if (t < NS_PER_SEC) {
		b->nanotokens = t;
		return 0;
	}
	b->nanotokens = t - NS_PER_SEC;
	return 1;
}

/* Who a request the program does not answer says it is, copied out of the frame for admission. */
struct who {
	__u8 src[6];    /* Ethernet source */
	__u8 chaddr[6];
	__u32 saddr;    /* IP source, network order */
	__u32 giaddr;   /* network order; 0: not relayed (or not read) */
	__u32 xid;
	__u8 type;      /* option 53; 0: not read */
	__u8 parsed;    /* chaddr, giaddr and xid come from a well-formed BOOTP header */
	__u8 reserved;  /* chaddr is reserved */
	__u8 pad;
};

/* admit decides whether a request the program does not answer may go up to the control plane;
 * every such request comes here, whatever its reason. A duplicate DISCOVER is dropped; giaddr is
 * accepted only from a configured relay; every other host is held to a rate per Ethernet source;
 * and MACs neither reserved nor leased to one rate for all of them, so a flood of random MACs
 * cannot starve the control plane of the machines it knows. */
static __always_inline int admit(struct fp_config *cfg, struct who *w)
{
	__u64 now = bpf_ktime_get_ns();
	if (cfg->dup_window_ns && w->type == DHCP_DISCOVER) {
		struct dup_key dk = {};
		__builtin_memcpy(dk.mac, w->chaddr, 6);
		dk.xid = w->xid;
		__u64 *seen = bpf_map_lookup_elem(&recent, &dk);
		if (seen && now - *seen < cfg->dup_window_ns) {
			count(C_DROP_DUPLICATE);
			return 0;
		}
		bpf_map_update_elem(&recent, &dk, &now, BPF_ANY);
	}
	int relay = 0;
	if (w->giaddr) {
		struct relay_key rk = {w->saddr, 0};
		if (!bpf_map_lookup_elem(&relays, &rk)) {
			count(C_DROP_UNTRUSTED_RELAY);
			return 0;
		}
		relay = 1; /* a relay speaks for a whole rack: not held to one host's rate */
	}
	if (cfg->source_rate && !relay) {
		struct res_key sk = {};
		__builtin_memcpy(sk.mac, w->src, 6);
		struct bucket *b = bpf_map_lookup_elem(&sources, &sk);
		if (!b) {
			struct bucket fresh = {cfg->source_burst * NS_PER_SEC, now};
			bpf_map_update_elem(&sources, &sk, &fresh, BPF_NOEXIST);
			b = bpf_map_lookup_elem(&sources, &sk);
		}
		if (b && !take(b, now, cfg->source_rate, cfg->source_burst)) {
			count(C_DROP_SOURCE_RATE);
			return 0;
		}
	}
	if (w->reserved)
		return 1;
	if (w->parsed) {
		struct res_key mk = {};
		__builtin_memcpy(mk.mac, w->chaddr, 6);
		if (bpf_map_lookup_elem(&known, &mk))
			return 1;
	}
	if (cfg->stranger_rate) {
		__u32 zero = 0;
		struct bucket *b = bpf_map_lookup_elem(&strangers, &zero);
		if (b && !take(b, now, cfg->stranger_rate, cfg->stranger_burst)) {
			count(C_DROP_STRANGER_RATE);
			return 0;
		}
	}
	return 1;
}

/* Where the options answer() reads are, found by scan_options. */
struct scan {
	__u64 bp;       /* in: offset of the BOOTP header in the frame */
	__u64 opt_end;  /* in: end of the options, relative to bp */
	__u32 cid_count;/* out: option 61 twice would be one concatenated identifier (RFC 3396) */
	__u16 off[S_MAX];/* out: offset of each slot's (last) option, relative to bp; 0: absent */
	__u8 len[S_MAX];
};

/* scan_options records where the options of a request are: a bounded scan, no per-code branches
 * (../shared/notes/xdp.md). 0 at END or the end of the options, 1 when malformed or too many.
 * A global function: the verifier checks it once, not once per path that reaches it (with or
 * without a VLAN tag). */
__attribute__((noinline)) int scan_options(struct xdp_md *ctx, struct scan *sc)
{
	if (!sc)
		return 1;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *bp = data + (sc->bp & 0xff);
	__u64 opt_end = sc->opt_end;
	__u64 o = BOOTP_OPTIONS;
	for (int i = 0; i < MAX_OPTION_STEPS; i++) {
		o &= 0x7ff;
		__u8 *p = bp + o;
		if ((void *)(p + 1) > end || o >= opt_end)
			return 0;
		__u8 code = p[0];
		if (code == 255)
			return 0;
		if (code == 0) {
			o += 1;
			continue;
		}
		if ((void *)(p + 2) > end || o + 2 > opt_end)
			return 1;
		__u8 l = p[1];
		__u32 s = slot_of(code);
		sc->cid_count += s == S_CLIENTID;
		if (s < S_MAX) {
			sc->off[s] = o;
			sc->len[s] = l;
		}
		o += 2 + (__u64)l;
		if (o > opt_end)
			return 1;
	}
	return 1;
}

/* PUNT: answer() leaves the request to the control plane, through admission. */
#define PUNT (-1)
/* NEXT: a step of answer() or send_reply() goes on to the next (XDP_ABORTED, also 0, is never a
 * verdict of this program). */
#define NEXT 0

/* up records why a request goes up to the control plane (a counter) and says PUNT. */
static __always_inline int up(__u32 *reason, __u32 why)
{
	*reason = why;
	return PUNT;
}

static __always_inline __u16 fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}


/* request_header counts a request to port 67 and reads what admission needs from its headers:
 * NEXT when the BOOTP header is well-formed, else the verdict (a fragment is dropped). */
static __always_inline int request_header(struct ethhdr *eth, struct iphdr *ip, struct bootp *bp, void *end,
					  struct who *w, __u32 *reason)
{
	count(C_RECEIVED);
	__builtin_memcpy(w->src, eth->h_source, 6);
	w->saddr = ip->saddr;
	if (ip->frag_off & bpf_htons(0x2000)) { /* more fragments: no DHCP client sends those */
		count(C_DROP_FRAGMENT);
		return XDP_DROP;
	}
	if ((void *)(bp + 1) > end)
		return up(reason, C_MALFORMED);
	if (bp->op != 1 || bp->htype != 1 || bp->hlen != 6 || bp->cookie != bpf_htonl(0x63825363))
		return up(reason, C_MALFORMED);
	__builtin_memcpy(w->chaddr, bp->chaddr, 6);
	w->giaddr = bp->giaddr;
	w->xid = bp->xid;
	w->parsed = 1;
	return NEXT;
}

/* ip_options handles a datagram with IP options (IHL > 5): never answered here (the reply is
 * built for a 20-byte header), but read at its real UDP offset, so a request among them is
 * counted and goes up to the control plane only through admission. */
static __always_inline int ip_options(struct ethhdr *eth, struct iphdr *ip, void *end, struct who *w, __u32 *reason)
{
	__u64 ihl = (__u64)(ip->ihl & 0xf) * 4;
	struct udphdr *udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(67))
		return XDP_PASS;
	int v = request_header(eth, ip, (void *)(udp + 1), end, w, reason);
	if (v != NEXT)
		return v;
	return up(reason, C_PASS_IP_OPTIONS);
}

/* What the steps of answer() learn about a request, each step filling its part. */
struct request {
	/* parse_request */
	struct ethhdr *eth;
	struct bootp *bp;
	void *end;
	__u64 l3;          /* offset of the IP header */
	struct scan sc;    /* where the options are */
	__u8 type;         /* option 53 */
	/* look_up */
	struct res_val *res;
	int vendor;        /* V_PLAIN, V_PXE or V_HTTP */
	/* choose_boot */
	struct boot_val *boot; /* NULL: a plain client no client class gives a boot file */
	__u16 arch;        /* the boot_key arch of boot; 0 for a plain client */
	/* choose_reply */
	__u8 reply;        /* DHCP_OFFER or DHCP_ACK */
};

/* opt is where the value of the option in slot s starts; callers check it against the frame. */
static __always_inline __u8 *opt(struct request *rq, __u32 s)
{
	return (void *)rq->bp + (rq->sc.off[s] & 0x7ff) + 2;
}

/* parse_request reads a frame up to its DHCP message type: NEXT for a well-formed request to port
 * 67, else the verdict (XDP_PASS for a frame that is no request to port 67, XDP_DROP for a
 * fragmented one, PUNT for every other request, its reason in *reason). IHL and fragments are
 * checked before anything is read past the IP header, so no request reaches the control plane
 * around admission. */
static __always_inline int parse_request(struct xdp_md *ctx, struct request *rq, struct who *w, __u32 *reason)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__u64 l3 = sizeof(*eth);
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) { /* one tag, kept in the reply */
		struct vlan_hdr *vh = data + l3;
		if ((void *)(vh + 1) > end)
			return XDP_PASS;
		proto = vh->proto;
		l3 += sizeof(*vh);
	}
	if (proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = data + l3;
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->version != 4 || ip->ihl < 5)
		return XDP_PASS; /* not an IPv4 UDP datagram the kernel would take */
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS; /* a later fragment has no UDP header; it never reassembles without its first */
	if (ip->ihl != 5)
		return ip_options(eth, ip, end, w, reason);
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != bpf_htons(67))
		return XDP_PASS;
	struct bootp *bp = (void *)(udp + 1);
	int v = request_header(eth, ip, bp, end, w, reason);
	if (v != NEXT)
		return v;
	__u64 udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) + sizeof(*bp) || (void *)udp + udp_len > end)
		return up(reason, C_MALFORMED);

	rq->sc = (struct scan){.bp = (void *)bp - data, .opt_end = udp_len - sizeof(*udp)};
	if (scan_options(ctx, &rq->sc))
		return up(reason, C_MALFORMED);
	rq->eth = eth;
	rq->bp = bp;
	rq->end = end;
	rq->l3 = l3;
	if (!rq->sc.off[S_TYPE] || rq->sc.len[S_TYPE] != 1)
		return up(reason, C_MALFORMED);
	__u8 *tp = opt(rq, S_TYPE);
	if ((void *)(tp + 1) > end)
		return up(reason, C_MALFORMED);
	rq->type = *tp;
	w->type = rq->type;
	return NEXT;
}

/* look_up finds the request's reservation and leaves to the control plane what it answers for a
 * reserved MAC: iPXE, and requests a client class of the reservation may match on what this
 * program does not evaluate (res->flags). */
static __always_inline int look_up(struct request *rq, struct who *w, __u32 *reason)
{
	struct res_key key = {};
	__builtin_memcpy(key.mac, rq->bp->chaddr, 6);
	struct res_val *res = bpf_map_lookup_elem(&reservations, &key);
	if (!res)
		return up(reason, C_PASS_UNKNOWN_MAC);
	w->reserved = 1;
	rq->res = res;

	__u16 *off = rq->sc.off;
	/* iPXE (user class, option 175) gets its per-machine script from the control plane. */
	if (off[S_USER] || off[S_IPXE])
		return up(reason, C_PASS_NETBOOT);
	rq->vendor = V_PLAIN;
	if (off[S_VENDOR])
		rq->vendor = netboot_vendor(opt(rq, S_VENDOR), rq->sc.len[S_VENDOR], rq->end);
	__u16 rflags = res->flags;
	if ((rflags & F_CLASS_VENDOR) && off[S_VENDOR])
		return up(reason, C_PASS_CLASS);
	if ((rflags & F_CLASS_CLIENT_ID) && off[S_CLIENTID])
		return up(reason, C_PASS_CLASS);
	if ((rflags & F_CLASS_ARCH) && off[S_ARCH] && rq->vendor == V_PLAIN)
		return up(reason, C_PASS_CLASS);
	return NEXT;
}

/* choose_boot picks the boot parameters of the reply. Firmware PXE and HTTP boot are answered
 * here when their architecture has pre-rendered ones; a plain client gets them when a client
 * class gives it a boot file (ARCH_PLAIN), and none otherwise. */
static __always_inline int choose_boot(struct request *rq, __u32 *reason)
{
	struct boot_key bkey = {};
	__builtin_memcpy(bkey.mac, rq->bp->chaddr, 6);
	if (rq->vendor == V_PLAIN) {
		bkey.arch = ARCH_PLAIN;
		rq->boot = bpf_map_lookup_elem(&boot_params, &bkey);
		rq->arch = 0;
		return NEXT;
	}
	if (rq->sc.off[S_ARCH]) {
		__u8 *p = opt(rq, S_ARCH);
		__u8 n = rq->sc.len[S_ARCH];
		if (n < 2 || (n & 1) || (void *)(p + 2) > rq->end)
			return up(reason, C_MALFORMED);
		bkey.arch = (__u16)p[0] << 8 | p[1];
	}
	if (bkey.arch & ARCH_HTTP) /* ARCH_PLAIN or an HTTP key: no such architecture */
		return up(reason, C_PASS_NETBOOT);
	if (rq->vendor == V_HTTP)
		bkey.arch |= ARCH_HTTP;
	rq->boot = bpf_map_lookup_elem(&boot_params, &bkey);
	if (!rq->boot)
		return up(reason, C_PASS_NETBOOT);
	rq->arch = bkey.arch;
	return NEXT;
}

/* choose_reply decides whether the request is this server's to answer, on the reservation's
 * subnet and for the reserved address: OFFER for a DISCOVER, ACK for a REQUEST. */
static __always_inline int choose_reply(struct request *rq, struct fp_config *cfg, struct who *w, __u32 *reason)
{
	struct res_val *res = rq->res;
	struct bootp *bp = rq->bp;
	__u16 *off = rq->sc.off;
	__u8 *len = rq->sc.len;

	/* The subnet is the relay's (giaddr) or, on the local link, the server's own. */
	__u32 giaddr = bp->giaddr;
	if (off[S_AGENT] || (giaddr && (giaddr & res->mask) != res->net))
		return up(reason, C_PASS_RELAY);
	if (giaddr) { /* answered only for a relay configured for this subnet */
		struct relay_key rk = {w->saddr, res->net};
		if (!bpf_map_lookup_elem(&relays, &rk))
			return up(reason, C_PASS_RELAY);
	}
	if (!giaddr && (cfg->server_ip & res->mask) != res->net)
		return up(reason, C_PASS_NOT_OURS);

	__u32 reqip = 0, server = 0;
	if (off[S_REQIP]) {
		__u8 *p = opt(rq, S_REQIP);
		if (len[S_REQIP] != 4 || (void *)(p + 4) > rq->end)
			return up(reason, C_MALFORMED);
		__builtin_memcpy(&reqip, p, 4);
	}
	if (off[S_SERVER]) {
		__u8 *p = opt(rq, S_SERVER);
		if (len[S_SERVER] != 4 || (void *)(p + 4) > rq->end)
			return up(reason, C_MALFORMED);
		__builtin_memcpy(&server, p, 4);
	}
	if (rq->type == DHCP_DISCOVER) {
		rq->reply = DHCP_OFFER;
		return NEXT;
	}
	if (rq->type != DHCP_REQUEST)
		return up(reason, C_PASS_TYPE);
	__u32 want;
	if (off[S_SERVER]) { /* SELECTING */
		if (server != cfg->server_ip)
			return up(reason, C_PASS_NOT_OURS);
		want = reqip;
	} else if (off[S_REQIP]) { /* INIT-REBOOT */
		want = reqip;
	} else { /* RENEWING, REBINDING */
		want = bp->ciaddr;
	}
	if (!want || want != res->yiaddr)
		return up(reason, C_PASS_NOT_OURS);
	rq->reply = DHCP_ACK;
	return NEXT;
}

/* prl_check reads option 55 (n codes at offset at of the frame): C_PASS_REQUESTED_OPTION when it asks for an
 * option only the control plane renders, C_MALFORMED past the frame, else 0. A global function:
 * the verifier checks its loop once, not once per path of answer() that reaches it. */
__attribute__((noinline)) int prl_check(struct xdp_md *ctx, struct res_val *res, __u32 at, __u32 n)
{
	if (!res || n > PRL_MAX)
		return C_PASS_REQUESTED_OPTION;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *codes = data + (at & 0x7ff);
	for (__u32 j = 0; j < PRL_MAX; j++) {
		if (j >= n)
			break;
		__u8 *p = codes + j;
		if ((void *)(p + 1) > end)
			return C_MALFORMED;
		__u8 c = *p;
		if (res->punt_prl[(c >> 3) & 31] & (1 << (c & 7)))
			return C_PASS_REQUESTED_OPTION;
	}
	return 0;
}

/* check_request_list sends the client to the control plane when its option 55 asks for an option
 * the area cannot carry, or when it has options this program does not read (in an overloaded
 * file or sname field, or option 61 more than once). */
static __always_inline int check_request_list(struct xdp_md *ctx, struct request *rq, __u32 *reason)
{
	if (rq->sc.off[S_PRL]) {
		int v = prl_check(ctx, rq->res, rq->sc.bp + (rq->sc.off[S_PRL] & 0x7ff) + 2, rq->sc.len[S_PRL]);
		if (v)
			return up(reason, v);
	}
	if (rq->sc.off[S_OVERLOAD] || rq->sc.cid_count > 1)
		return up(reason, C_PASS_OPTIONS);
	return NEXT;
}

/* What answer() learnt from a request it answers, for send_reply. */
struct facts {
	__u64 l3;        /* offset of the IP header */
	__u64 reply_len; /* the reply's options: the area, with option 61 when echoed */
	__u32 area_len, area_end;
	__u32 xid;       /* as on the wire */
	__u32 ciaddr, yiaddr, giaddr; /* network order */
	__u32 sum;       /* the area's checksum contribution, for this reply type */
	__u32 cid_len;   /* length of the echoed identifier; 0: no option 61 */
	__u16 flags;     /* as on the wire */
	__u16 arch;
	__u8 type, reply;
	__u8 pxe;        /* answered firmware PXE or HTTP boot (else a plain client, with or without a class's boot file) */
	__u8 client_mac[6], src_mac[6];
	__u8 cid[2 + CID_MAX + 6]; /* 61, length, identifier, zeros: summed whole (a multiple of 4) */
};

/* read_facts copies what the reply needs out of the request, which the reply overwrites. Option 61
 * is echoed unaltered (RFC 6842), just before END, where the control plane puts it (82, which would
 * follow it, never reaches here). */
static __always_inline int read_facts(struct xdp_md *ctx, struct request *rq, struct facts *fa, __u32 *reason)
{
	struct res_val *res = rq->res;
	struct boot_val *boot = rq->boot;
	__u32 area_len = boot ? boot->area_len : res->area_len;
	__u32 area_end = boot ? boot->area_end : res->area_end;
	if (area_len < 4 || area_len > AREA_MAX || area_end >= area_len)
		return up(reason, C_PASS_SIZE);
	fa->l3 = rq->l3;
	fa->area_len = area_len;
	fa->area_end = area_end;
	fa->reply_len = area_len;
	if (rq->sc.off[S_CLIENTID]) {
		__u32 n = rq->sc.len[S_CLIENTID];
		if (n < 2)
			return up(reason, C_MALFORMED); /* RFC 2132 9.14: at least 2 bytes */
		if (n > CID_MAX)
			return up(reason, C_PASS_SIZE);
		fa->cid_len = n;
		fa->reply_len = area_end + 3 + n; /* 61, length, identifier, END */
		if (fa->reply_len < area_len)
			fa->reply_len = area_len; /* the area's padding to the BOOTP minimum */
		if (fa->reply_len > AREA_MAX)
			return up(reason, C_PASS_SIZE);
		fa->cid[0] = 61;
		fa->cid[1] = n;
		__u64 at = rq->l3 + sizeof(struct iphdr) + sizeof(struct udphdr) + (rq->sc.off[S_CLIENTID] & 0x7ff) + 2;
		if (bpf_xdp_load_bytes(ctx, at, fa->cid + 2, n))
			return up(reason, C_MALFORMED);
	}

	struct bootp *bp = rq->bp;
	fa->xid = bp->xid;
	fa->ciaddr = bp->ciaddr;
	fa->flags = bp->flags;
	fa->giaddr = bp->giaddr;
	__builtin_memcpy(fa->client_mac, bp->chaddr, 6);
	__builtin_memcpy(fa->src_mac, rq->eth->h_source, 6);
	fa->yiaddr = res->yiaddr;
	fa->type = rq->type;
	fa->reply = rq->reply;
	fa->arch = rq->arch;
	fa->pxe = rq->vendor != V_PLAIN;
	if (boot)
		fa->sum = rq->reply == DHCP_OFFER ? boot->sum_offer : boot->sum_ack;
	else
		fa->sum = rq->reply == DHCP_OFFER ? res->sum_offer : res->sum_ack;
	return NEXT;
}

/* write_options sizes the frame to the reply and writes its options: the area, its message type
 * set to the reply's, and option 61 when echoed. *sum becomes their checksum contribution. */
static __always_inline int write_options(struct xdp_md *ctx, struct res_val *res, struct boot_val *boot,
					 struct facts *f, __u32 *sum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 l3 = f->l3 & 0xff;
	__u64 reply_len = f->reply_len;
	__u32 area_len = f->area_len, area_end = f->area_end, cid_len = f->cid_len;
	if (area_len < 4 || area_len > AREA_MAX || reply_len < area_len || reply_len > AREA_MAX ||
	    area_end >= area_len || cid_len > CID_MAX)
		return PUNT;
	__u32 s = f->sum;
	__u8 reply = f->reply;

	/* Size the frame to the reply: shrinking always works, growing may not (then: pass). */
	__u64 opts = l3 + sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct bootp);
	long delta = (long)(opts + reply_len) - (long)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, (int)delta))
		return PUNT;
	if (boot) {
		if (bpf_xdp_store_bytes(ctx, opts, boot->area, area_len))
			return PUNT;
	} else if (bpf_xdp_store_bytes(ctx, opts, res->area, area_len)) {
		return PUNT;
	}
	if (bpf_xdp_store_bytes(ctx, opts + 2, &reply, 1))
		return PUNT;
	if (cid_len) {
		__u64 at = opts + area_end;
		__u8 end_opt = 255;
		if (bpf_xdp_store_bytes(ctx, at, f->cid, cid_len + 2) ||
		    bpf_xdp_store_bytes(ctx, at + 2 + cid_len, &end_opt, 1))
			return PUNT;
		/* The area's sum counted END at area_end; now 61 starts there and END follows it. Bytes
		 * at an even offset from the options (which start 16-bit aligned) count as the low byte
		 * of a word, as csum_diff sums memory on a little-endian machine. */
		__u16 c = fold(bpf_csum_diff(0, 0, (__be32 *)f->cid, sizeof(f->cid), 0));
		if (area_end & 1)
			c = c >> 8 | c << 8;
		__u32 end_was = area_end & 1 ? 0xff00 : 0x00ff;
		__u32 end_now = (area_end + 2 + cid_len) & 1 ? 0xff00 : 0x00ff;
		s = fold((__u64)s + c + end_now + (0xffff ^ end_was));
	}
	*sum = s;
	return NEXT;
}

/* destination says where a reply goes (RFC 2131 4.1), its IP address returned: relayed → the
 * relay, port 67, at the MAC it came from; renewing → unicast to ciaddr; broadcast bit →
 * broadcast; else yiaddr at chaddr. */
static __always_inline __u32 destination(struct facts *f, __u8 *mac, __u16 *port)
{
	*port = bpf_htons(68);
	if (f->giaddr) {
		__builtin_memcpy(mac, f->src_mac, 6);
		*port = bpf_htons(67);
		return f->giaddr;
	}
	if (f->ciaddr) {
		__builtin_memcpy(mac, f->src_mac, 6);
		return f->ciaddr;
	}
	if (f->flags & bpf_htons(0x8000)) {
		__builtin_memset(mac, 0xff, 6);
		return 0xffffffff;
	}
	__builtin_memcpy(mac, f->client_mac, 6);
	return f->yiaddr;
}

/* write_headers turns the request's headers, in a frame write_options sized, into the reply's,
 * with the UDP checksum over them and the options' sum: XDP_TX, or XDP_DROP for a frame too
 * short for them. */
static __always_inline int write_headers(struct xdp_md *ctx, struct fp_config *cfg, struct boot_val *boot,
					 struct facts *f, __u32 sum)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 l3 = f->l3 & 0xff;
	__u32 ciaddr = f->ciaddr, yiaddr = f->yiaddr;
	__u8 reply = f->reply;
	__u8 dst_mac[6];
	__u16 dst_port;
	__u32 dst_ip = destination(f, dst_mac, &dst_port);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	struct iphdr *ip = data + l3;
	if ((void *)(ip + 1) > end)
		return XDP_DROP;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return XDP_DROP;
	struct bootp *bp = (void *)(udp + 1);
	if ((void *)(bp + 1) > end)
		return XDP_DROP;

	__builtin_memcpy(eth->h_dest, dst_mac, 6);
	__builtin_memcpy(eth->h_source, cfg->mac, 6);

	__u16 ip_len = sizeof(*ip) + sizeof(*udp) + sizeof(*bp) + f->reply_len;
	ip->tos = 0;
	ip->tot_len = bpf_htons(ip_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->check = 0;
	ip->saddr = cfg->server_ip;
	ip->daddr = dst_ip;
	ip->check = ~fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));

	__u16 u_len = ip_len - sizeof(*ip);
	udp->source = bpf_htons(67);
	udp->dest = dst_port;
	udp->len = bpf_htons(u_len);
	udp->check = 0;

	bp->op = 2;
	bp->hops = 0;
	bp->secs = 0;
	bp->ciaddr = reply == DHCP_ACK ? ciaddr : 0;
	bp->yiaddr = yiaddr;
	__builtin_memset(bp->chaddr + 6, 0, 10);
	__builtin_memset(bp->sname, 0, sizeof(bp->sname));
	if (boot) {
		bp->siaddr = boot->siaddr;
		__builtin_memcpy(bp->file, boot->file, sizeof(bp->file));
	} else {
		bp->siaddr = 0;
		__builtin_memset(bp->file, 0, sizeof(bp->file));
	}

	struct {
		__u32 saddr, daddr;
		__u8 zero, proto;
		__u16 len;
	} pseudo = {cfg->server_ip, dst_ip, 0, IPPROTO_UDP, bpf_htons(u_len)};
	__u64 s = bpf_csum_diff(0, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	s += bpf_csum_diff(0, 0, (__be32 *)udp, sizeof(*udp) + sizeof(*bp), 0);
	s += sum;
	__u16 csum = ~fold(s);
	udp->check = csum ? csum : 0xffff;
	return XDP_TX;
}

/* report tells the daemon of an answer, for the machine's history, and counts it; a full ring
 * loses the report, never the reply. */
static __always_inline void report(struct facts *f)
{
	struct event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		ev->time_ns = bpf_ktime_get_ns();
		ev->xid = f->xid;
		ev->yiaddr = f->yiaddr;
		__builtin_memcpy(ev->mac, f->client_mac, 6);
		ev->msg_type = f->type;
		ev->reply = f->reply;
		ev->arch = f->arch;
		ev->pxe = f->pxe;
		__builtin_memset(ev->pad, 0, sizeof(ev->pad));
		bpf_ringbuf_submit(ev, 0);
	} else {
		count(C_EVENTS_LOST);
	}
	count(f->reply == DHCP_OFFER ? C_OFFER : C_ACK);
	if (f->pxe)
		count(C_PXE);
}

/* send_reply rewrites the request in ctx into its reply (XDP_TX) and reports it, or says PUNT when
 * the frame cannot be sized or written. A global function: the verifier checks it once, not once
 * per path of answer() that reaches it. boot is NULL for a plain DHCP client. */
__attribute__((noinline)) int send_reply(struct xdp_md *ctx, struct fp_config *cfg, struct res_val *res,
					 struct boot_val *boot, struct facts *f)
{
	if (!cfg || !res || !f)
		return PUNT;
	__u32 sum;
	int v = write_options(ctx, res, boot, f, &sum);
	if (v != NEXT)
		return v;
	v = write_headers(ctx, cfg, boot, f, sum);
	if (v == XDP_TX)
		report(f);
	return v;
}

/* answer rewrites a DHCP request for a reserved MAC into its reply in place (XDP_TX), in steps
 * that each may end it: a frame that is no request to port 67 is XDP_PASS, a fragmented one
 * XDP_DROP; every other request is PUNT, its reason in *reason and what admission needs in *w. */
static __always_inline int answer(struct xdp_md *ctx, struct fp_config *cfg, struct who *w, __u32 *reason)
{
	struct request rq;
	int v = parse_request(ctx, &rq, w, reason);
	if (v != NEXT)
		return v;
	v = look_up(&rq, w, reason);
	if (v != NEXT)
		return v;
	v = choose_boot(&rq, reason);
	if (v != NEXT)
		return v;
	v = choose_reply(&rq, cfg, w, reason);
	if (v != NEXT)
		return v;
	v = check_request_list(ctx, &rq, reason);
	if (v != NEXT)
		return v;
	struct facts fa = {};
	v = read_facts(ctx, &rq, &fa, reason);
	if (v != NEXT)
		return v;
	v = send_reply(ctx, cfg, rq.res, rq.boot, &fa);
	if (v == PUNT)
		return up(reason, C_PASS_SIZE);
	return v;
}

SEC("xdp")
int netbootd_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->enabled)
		return XDP_PASS;
	struct who w = {};
	__u32 c = C_MALFORMED;
	int verdict = answer(ctx, cfg, &w, &c);
	if (verdict != PUNT)
		return verdict;
	if (!admit(cfg, &w))
		return XDP_DROP;
	return pass(c);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
