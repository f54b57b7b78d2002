/* dhcp6.h: DHCPv6 for reserved machines, answered in place (XDP_TX): a SOLICIT gets ADVERTISE (or
 * REPLY with Rapid Commit), a REQUEST for this server gets REPLY. The reply's body comes
 * pre-rendered per reserved MAC and firmware variant by the control plane's DHCPv6 handler
 * (control/dhcp6d, FastEntries): the server identifier, the IA_NA with the reserved address, the
 * boot file URL. The program copies in only what the client sent: the transaction id, its client
 * identifier (option 1, verbatim) and the IAID of its IA_NA (and the enterprise number of its
 * HTTPClient vendor class, which the reply echoes).
 *
 * The machine is the Ethernet source; a client identifier (DUID-LL/LLT) or an EUI-64 link-local
 * source naming another MAC is never answered here, and is dropped when the MAC it names is
 * reserved (a host claiming a reserved machine's identity from another MAC). Everything else
 * (RENEW, REBIND, RELEASE, DECLINE, INFORMATION-REQUEST, relayed messages, unknown MACs, options
 * this program does not validate) is XDP_PASS to the control plane, counted by reason.
 * Part of netbootd.c's one translation unit: included once, in order, from there. */
#pragma once

#define HEAD6_MAX 32  /* options before the IA_NA: the server identifier (DUID-LL: 14 bytes) */
#define IA6_LEN 44    /* IA_NA with one IAADDR: 4 + 12 + 4 + 24 */
#define TAIL6_MAX 256 /* options after the IA_NA: boot file URL (59), vendor class (16) */
#define CID6_MAX 128  /* longest client identifier answered here (a DUID is at most 130) */
#define MAX_OPTION6_STEPS 24
/* Room for the UDP header and the largest reply (4 + 4 + CID6_MAX + 4 + HEAD6_MAX + IA6_LEN +
 * TAIL6_MAX = 472), with zero padding to the checksum's 32-bit words; a power of two for masks. */
#define SCRATCH6 512

#define DHCP6_SOLICIT 1
#define DHCP6_ADVERTISE 2
#define DHCP6_REQUEST 3
#define DHCP6_REPLY 7
#define DHCP6_RELAY_FORW 12

/* The reply body for one reserved MAC and one firmware variant (struct boot_key: arch as for
 * DHCPv4, | ARCH_HTTP for HTTPClient, ARCH_PLAIN for a client that is not network booting). The
 * key {mac, ARCH_PLAIN} is present for every reserved MAC with an ip6. */
struct reply6_val {
	__u16 head_len;   /* options before the IA_NA, the server identifier first */
	__u16 tail_len;   /* options after it */
	__u16 vendor_off; /* offset in tail of the enterprise number echoed from the client's option 16; 0xffff: none */
	__u16 pad;
	__u8 ia[IA6_LEN]; /* IA_NA with the reserved address and lifetimes, IAID zero */
	__u8 head[HEAD6_MAX];
	__u8 tail[TAIL6_MAX];
};

struct fp_config6 {
	__u8 src[16];  /* the interface's link-local address: source of every reply */
	__u32 enabled; /* dhcp6 is on for this interface */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 21);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct boot_key);
	__type(value, struct reply6_val);
} replies6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_config6);
} config6 SEC(".maps");

/* NOT6: the frame is no DHCPv6 message to a server on a link with dhcp6 on: the DHCPv4 steps go on. */
#define NOT6 (-2)
/* SEND6: answer6 found the message answerable; its facts and key are in scratch6 for reply6. */
#define SEND6 (-3)

/* Slots of the options a message may carry to be answered here; any other code goes up. */
enum { S6_ODD, S6_CLIENTID, S6_SERVERID, S6_IANA, S6_ORO, S6_ELAPSED, S6_RAPID, S6_USER, S6_VENDOR, S6_ARCH, S6_NII, S6_RECONF, S6_MAX };

static __always_inline __u32 slot6_of(__u16 code)
{
	switch (code) {
	case 1: return S6_CLIENTID;
	case 2: return S6_SERVERID;
	case 3: return S6_IANA;
	case 6: return S6_ORO;
	case 8: return S6_ELAPSED;
	case 14: return S6_RAPID;
	case 15: return S6_USER;
	case 16: return S6_VENDOR;
	case 61: return S6_ARCH;
	case 62: return S6_NII;
	case 20: return S6_RECONF; /* Reconfigure Accept: read by neither path */
	}
	return S6_ODD;
}

/* Where a message's options are, found by scan6. */
struct scan6 {
	__u64 at;            /* in: frame offset of the first option */
	__u64 end;           /* in: frame offset of the message's end */
	__u16 off[S6_MAX];   /* out: frame offset of each slot's option (its code) */
	__u16 len[S6_MAX];   /* out: its length */
	__u8 count[S6_MAX];  /* out: how many times it came */
};

/* scan6 records where the options of a DHCPv6 message are: 0 when they end exactly at the
 * message's end, 1 when malformed or too many, 2 at a code this program does not validate.
 * Inlined in answer6, which is verified once: a call would make the DHCPv6 call chain deeper than
 * the stack the DHCPv4 steps leave. */
static __always_inline int scan6(struct xdp_md *ctx, struct scan6 *sc)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 at = sc->at, stop = sc->end;
	for (int i = 0; i < MAX_OPTION6_STEPS; i++) {
		if (at == stop)
			return 0;
		at &= 0xfff;
		__u8 *p = data + at;
		if ((void *)(p + 4) > end || at + 4 > stop)
			return 1;
		__u16 code = (__u16)p[0] << 8 | p[1];
		__u16 l = (__u16)p[2] << 8 | p[3];
		__u32 s = slot6_of(code);
		if (s == S6_ODD)
			return 2;
		if (s < S6_MAX) {
			sc->off[s] = at;
			sc->len[s] = l;
			sc->count[s] += 1;
		}
		at += 4 + (__u64)l;
		if (at > stop)
			return 1;
	}
	return 1;
}

/* What answer6 learns about a message it answers, for send6. */
struct facts6 {
	__u64 l3;        /* frame offset of the IPv6 header */
	__u64 cid_at;    /* frame offset of the client identifier option */
	__u32 cid_len;   /* its length with code and length */
	__u32 iaid;      /* as on the wire */
	__u32 enterprise;/* as on the wire */
	__u8 xid[3];
	__u8 reply;      /* DHCP6_ADVERTISE or DHCP6_REPLY */
	__u8 type;       /* the request's */
	__u8 rapid;      /* a REPLY to a SOLICIT with Rapid Commit: option 14 after the client id */
	__u8 has_ia;
	__u8 pxe;
	__u16 arch;      /* the boot_key arch */
	__u8 client_mac[6];
	__u8 client_ip[16];
};

/* What answer6 works on, off the stack (the DHCPv4 steps leave a DHCPv6 call chain 128 bytes). */
struct scratch6 {
	__u8 buf[SCRATCH6]; /* the client identifier, out of the way of the reply; then the reply, summed */
	struct facts6 fa;
	struct scan6 sc;
	struct {
		__u8 src[16], dst[16];
		__u32 len, next;
	} pseudo;          /* the IPv6 pseudo-header of the UDP checksum */
	__u8 tmp[32];      /* option values read for checks */
	struct boot_key key; /* the reply's: the Ethernet source and the firmware variant */
	__u8 mac[8];       /* the MAC the client claims */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch6);
} scratch6 SEC(".maps");

/* option6 is the frame offset of the value of the option in slot s. */
static __always_inline __u64 option6(struct scan6 *sc, __u32 s)
{
	return (__u64)(sc->off[s] & 0xfff) + 4;
}

/* load6 copies n (1..16) bytes of the frame at off into dst: 0, or -1 past the frame. */
static __always_inline int load6(struct xdp_md *ctx, __u64 off, void *dst, __u32 n)
{
	if (n < 1 || n > 16)
		return -1;
	return bpf_xdp_load_bytes(ctx, off & 0xfff, dst, n) ? -1 : 0;
}
