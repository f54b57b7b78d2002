/* netbootd.h: the types and maps the program shares with the control plane (bpf2go -type), its
 * counters and the DHCP constants every step uses.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

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
	F_NO_PLAIN_BOOT = 8,   /* boot_params has no ARCH_PLAIN entry: a plain client's lookup is skipped
				* (a miss still reads a random bucket of a 32 MiB array: a cache and TLB
				* miss per request). Unset, as in a value an older netbootd wrote, it
				* looks up. */
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
	/* DHCPv6 (dhcp6.h), on a link with dhcp6 on. */
	C_RECEIVED6,        /* IPv6 UDP to port 547 seen */
	C_ADVERTISE6,
	C_REPLY6,
	C_PASS_UNKNOWN_MAC6,/* Ethernet source not reserved with an ip6, or the client claims another MAC that is not reserved */
	C_PASS_TYPE6,       /* RENEW, REBIND, RELEASE, DECLINE, CONFIRM, INFORMATION-REQUEST */
	C_PASS_RELAY6,      /* RELAY-FORW, or not from a client's port */
	C_PASS_NETBOOT6,    /* iPXE, or firmware whose variant has no pre-rendered reply */
	C_PASS_NOT_OURS6,   /* not to ff02::1:2 from a link-local source, or a server identifier not ours (or, in a SOLICIT, any) */
	C_PASS_OPTIONS6,    /* options this program does not validate, or repeated */
	C_PASS_SIZE6,       /* client identifier over CID6_MAX, or the reply does not fit */
	C_MALFORMED6,
	C_DROP_SPOOFED6,    /* a client identifier or EUI-64 source naming a reserved MAC, from another MAC: dropped */
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
	__u8 v6;       /* 1: DHCPv6 (msg_type 1 SOLICIT, 3 REQUEST; reply 2 ADVERTISE, 7 REPLY; xid 24 bits) */
	__u8 pad[4];
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

#define DHCP_DISCOVER 1
#define DHCP_OFFER 2
#define DHCP_REQUEST 3
#define DHCP_ACK 5
#define BOOTP_OPTIONS 240 /* offset of the options in the BOOTP payload */
